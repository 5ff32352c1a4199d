"""Edges between keypoints (``nose-leftear``), stored in the result folder as ``<stem>_skeleton.json``.

The skeleton only draws and documents: tracking never uses it. It is carried into SLEAP and NWB
exports and into overlay videos. The file is ``{"edges": [["nose", "leftear"], ...]}``; a
``--skeleton`` file may also be a plain list of pairs or text with one ``a-b`` pair per line or
comma.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import InputError
from ..io.atomic import atomic_write_text
from ..io.paths import ResultLayout

__all__ = [
    "Edge",
    "check_edges",
    "format_edges",
    "parse_edges",
    "read_skeleton",
    "read_skeleton_file",
    "skeleton_file",
    "write_skeleton",
]

Edge = tuple[str, str]
_SEPARATORS = re.compile(r"[,;\n]+")


def skeleton_file(layout: ResultLayout) -> Path:
    """Where a result folder keeps its skeleton: ``<folder>/<stem>_skeleton.json``."""
    return layout.folder / f"{layout.stem}_skeleton.json"


def parse_edges(text: str, known: Sequence[str] | None = None, where: str = "skeleton") -> list[Edge]:
    """``"nose-leftear, nose-rightear"`` as edges, in order, without repeats.

    Pairs are separated by commas, semicolons or new lines; the two names of a pair by ``-``. A name
    that itself contains ``-`` is found when ``known`` lists the keypoint names. ``where`` names the
    field or file in error messages.
    """
    edges: list[Edge] = []
    for token in _SEPARATORS.split(text):
        token = token.strip()
        if token:
            edges.append(_split_pair(token, known, where))
    return _unique(edges, where)


def _split_pair(token: str, known: Sequence[str] | None, where: str) -> Edge:
    dashes = [i for i, ch in enumerate(token) if ch in "-–>"]
    pairs = [(token[:i].strip(" ->–"), token[i + 1 :].strip(" ->–")) for i in dashes]
    pairs = list(dict.fromkeys((a, b) for a, b in pairs if a and b))  # "a->b" splits twice the same way
    if known is not None and len(pairs) > 1:
        pairs = [(a, b) for a, b in pairs if a in known and b in known] or pairs
    if len(pairs) != 1:
        raise InputError(
            f"{where}: cannot read {token!r} as one edge; write two keypoint names joined by '-', e.g. 'nose-leftear'"
        )
    return pairs[0]


def _unique(edges: Iterable[Sequence[str]], where: str) -> list[Edge]:
    out: list[Edge] = []
    for pair in edges:
        if len(pair) != 2 or not all(isinstance(name, str) and name for name in pair):
            raise InputError(f"{where}: an edge must be two keypoint names, got {list(pair)!r}")
        a, b = pair
        if a == b:
            raise InputError(f"{where}: edge {a}-{b} joins a keypoint to itself; remove it")
        if (a, b) not in out and (b, a) not in out:
            out.append((a, b))
    return out


def format_edges(edges: Iterable[Edge]) -> str:
    """Edges as the text :func:`parse_edges` reads (``"nose-leftear, nose-rightear"``)."""
    return ", ".join(f"{a}-{b}" for a, b in edges)


def check_edges(edges: Iterable[Edge], keypoints: Sequence[str], where: str) -> list[Edge]:
    """``edges`` if every name is one of ``keypoints``; else InputError naming ``where`` and the unknown names."""
    edges = list(edges)
    unknown = sorted({name for edge in edges for name in edge} - set(keypoints))
    if unknown:
        raise InputError(
            f"{where}: the skeleton names keypoints that the results do not have: {', '.join(unknown)} "
            f"(keypoints: {', '.join(keypoints)}). Fix the names or remove those edges."
        )
    return edges


def read_skeleton_file(path: str | os.PathLike[str]) -> list[Edge]:
    """Edges from a ``--skeleton`` file: our JSON, a JSON list of pairs, or ``a-b`` text."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the skeleton file ({exc.strerror or exc})") from None
    if path.suffix.lower() != ".json":
        return parse_edges(text, where=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if isinstance(data, dict):
        data = data.get("edges")
    if not isinstance(data, list):
        raise InputError(f'{path}: expected {{"edges": [["nose", "leftear"], ...]}} or a list of pairs')
    return _unique(data, str(path))


def read_skeleton(layout: ResultLayout) -> list[Edge]:
    """The result folder's skeleton; ``[]`` when it has none."""
    path = skeleton_file(layout)
    return read_skeleton_file(path) if path.is_file() else []


def write_skeleton(layout: ResultLayout, edges: Iterable[Edge]) -> Path:
    """Store ``edges`` in the result folder (atomically); return the file."""
    edges = _unique(edges, str(skeleton_file(layout)))
    layout.ensure_folder()
    text = json.dumps({"edges": [list(edge) for edge in edges]}, indent=2) + "\n"
    return atomic_write_text(skeleton_file(layout), text)
