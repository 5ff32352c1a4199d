"""Which keypoint and instance names are safe to write into every output.

A name becomes a CSV cell, a LabelMe label and a napari feature. A line break inside it (any of
the separators :meth:`str.splitlines` knows, not only ``\\n``) splits a table row in two for
every line-based reader; a leading ``=``, ``+``, ``-`` or ``@`` makes spreadsheets run the cell
as a formula (CSV injection). Such names are refused where they enter: when a seed file is read
and when a name is typed in the dock.
"""

from __future__ import annotations

import re

__all__ = ["FORMULA_STARTS", "LINE_BREAKS", "left_right_pairs", "name_problem"]

#: Characters :meth:`str.splitlines` breaks a line at.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a keypoint or instance name, or None when it can."""
    if not name:
        return "a name cannot be empty"
    breaks = sorted({f"U+{ord(c):04X}" for c in name if c in LINE_BREAKS})
    if breaks:
        return f"{name!r} contains a line break ({', '.join(breaks)}); names must fit on one line"
    if name.startswith(FORMULA_STARTS):
        return (
            f"{name!r} starts with {name[0]!r}, which spreadsheets read as a formula; "
            "start names with a letter or digit"
        )
    return None


_SIDE = re.compile(r"^(left|right)[\s_\-]*(.*)$", re.IGNORECASE)


def left_right_pairs(keys: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Index pairs (left, right) of one instance's ``left*``/``right*`` keypoints with the same rest of name.

    ``keys`` are (instance, keypoint); case is ignored and ``_``, ``-`` or a space may follow the side.
    """
    sides: dict[tuple[str, str, str], int] = {}
    for col, (inst, name) in enumerate(keys):
        match = _SIDE.match(name)
        if match:
            sides[inst, match.group(1).lower(), match.group(2).lower()] = col
    return [
        (col, sides[inst, "right", rest])
        for (inst, side, rest), col in sides.items()
        if side == "left" and (inst, "right", rest) in sides
    ]
