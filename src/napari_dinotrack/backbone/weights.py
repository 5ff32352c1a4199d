"""Where the weights of a named backbone come from, and what to tell the user when they cannot.

A model name (``load_backbone(name)``, ``--model NAME``) is resolved in this order; the first
rule that applies wins:

a) **A local folder.** If ``name`` is an existing folder containing ``config.json`` (written by
   ``model.save_pretrained(folder)``, or a hub snapshot folder), it is loaded from there. A name
   that looks like a path (starts with ``/``, ``.``, ``~``, or has several ``/``) but is not such
   a folder is an error naming the path.
b) **The ``DINOV3_LOCATION`` environment variable**, if set, may point to any of:

   1. a model folder itself (it contains ``config.json``). It is used for the default model
      (no name, or ``dinov3-vits16`` and its aliases), and for any named model whose folder
      name or architecture (``config.json``: model type, width, depth, patch size, MLP type)
      matches that model; otherwise it is skipped;
   2. a folder holding model folders named by the repo id's last part,
      ``$DINOV3_LOCATION/dinov3-vits16-pretrain-lvd1689m/``, by the full repo id,
      ``$DINOV3_LOCATION/facebook/dinov3-vits16-pretrain-lvd1689m/``, or by the catalog key,
      ``$DINOV3_LOCATION/dinov3-vits16/``;
   3. a Hugging Face hub cache directory (it contains ``models--facebook--dinov3-...``
      folders, either directly or in a ``hub/`` sub-folder, i.e. an ``HF_HOME``). It is then
      used as ``cache_dir`` for this model: looked up there, and downloaded into it.

   Despite its name the variable serves DINOv2 models the same way.
c) **The normal Hugging Face cache** (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), and if the weights are not cached there, a **download from the
   hub**. DINOv3 repositories are gated: log in (``hf auth login`` or ``HF_TOKEN``) and accept
   the licence on the model page first.

Every failure is a :class:`BackboneUnavailableError` whose message lists the remedies.

Nothing here loads a model or touches the network. Importing this module does not import torch,
transformers or huggingface_hub.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackboneUnavailableError
from . import hub
from .catalog import (
    DEFAULT_MODEL,
    OPEN_FALLBACK_MODEL,
    ModelSpec,
    get_default_spec,
    model_names_help,
    resolve_model_name,
)

__all__ = [
    "ENV_LOCATION",
    "BackboneUnavailableError",
    "WeightLocation",
    "available_locally",
    "locate",
    "locate_weights",
]

ENV_LOCATION = "DINOV3_LOCATION"
"""Environment variable naming a folder with downloaded weights (see the module docstring)."""

SUPPORTED_MODEL_TYPES = {"dinov3_vit": "dinov3", "dinov2": "dinov2", "dinov2_with_registers": "dinov2"}
"""transformers ``model_type`` -> catalog family, for every architecture the backbone can run."""

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass
class WeightLocation:
    """Where one model's weights are to be loaded from."""

    label: str  # what the user asked for, for messages
    spec: ModelSpec | None
    kind: str  # "folder" | "hub"
    source: str  # folder path or repo id
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra from_pretrained arguments
    notes: list[str] = field(default_factory=list)  # why DINOV3_LOCATION was not used, for messages

    @property
    def cache_dir(self) -> str | None:
        return self.kwargs.get("cache_dir")


# --------------------------------------------------------------------------- folder checks


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def has_weights(folder: Path) -> bool:
    return any((folder / f).is_file() for f in WEIGHT_FILES)


def patch_size_of(patch: Any) -> Any:
    """A config's ``patch_size``, which some configs store as a (height, width) pair."""
    return patch[0] if isinstance(patch, list | tuple) else patch


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _config_matches(spec: ModelSpec, cfg: dict[str, Any]) -> bool:
    """Whether a ``config.json`` describes the architecture of ``spec``."""
    if SUPPORTED_MODEL_TYPES.get(cfg.get("model_type", "")) != spec.family:
        return False
    swiglu = bool(cfg.get("use_gated_mlp", cfg.get("use_swiglu_ffn", False)))
    return (
        cfg.get("hidden_size") == spec.feature_dim
        and cfg.get("num_hidden_layers") == spec.depth
        and patch_size_of(cfg.get("patch_size")) == spec.patch_size
        and swiglu == spec.swiglu
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~", "\\"))
        or "\\" in name
        or name.count("/") >= 2
        or bool(_WINDOWS_DRIVE.match(name))
    )


def _hub_cache_in(folder: Path, repo_id: str) -> Path | None:
    """``folder`` (or ``folder/hub``) if it is a hub cache directory, preferring one that
    already holds ``repo_id``."""
    entry = "models--" + repo_id.replace("/", "--")
    candidates = [folder, folder / "hub"]
    for c in candidates:
        if (c / entry).is_dir():
            return c
    for c in candidates:
        if c.is_dir() and any(p.name.startswith("models--") for p in c.iterdir()):
            return c
    return None


# --------------------------------------------------------------------------- the lookup rules


def locate(name: str | None) -> WeightLocation:
    """Apply rules (a), (b), (c) of the module docstring."""
    raw = (name or "").strip()
    label = raw or DEFAULT_MODEL
    spec = resolve_model_name(raw) if raw else get_default_spec()
    if raw:
        folder = _given_folder(raw, spec)
        if folder is not None:
            return WeightLocation(label, None, "folder", folder)
    if spec is None and not _REPO_ID.match(raw):
        raise BackboneUnavailableError(
            f"Unknown backbone model {raw!r}. Known models: {model_names_help()} (short aliases "
            "such as 'vits16' or 'dinov2-small' work too); you can also pass a local model "
            "folder, a Hugging Face repo id such as 'facebook/dinov2-small', or 'pixel:' (a "
            "weight-free test backbone).",
            raw,
        )
    repo_id = spec.repo_id if spec is not None else raw
    notes: list[str] = []
    env = os.environ.get(ENV_LOCATION, "").strip()
    if env:
        found = _in_env_location(env, label, spec, repo_id, notes)
        if found is not None:
            return found
    return WeightLocation(label, spec, "hub", repo_id, {"cache_dir": hub.default_cache_dir()}, notes)


def _given_folder(raw: str, spec: ModelSpec | None) -> str | None:
    """Rule (a): ``raw`` as an existing model folder, None if it is no path at all.

    A name that is not in the catalog but points at a file, an empty folder or a missing path is
    an error: it was surely meant as a folder, and a hub lookup would only confuse the message.
    """
    path = Path(raw).expanduser()
    if is_model_folder(path):
        return str(path)
    if spec is not None:
        return None
    if path.exists():
        if not path.is_dir():
            raise BackboneUnavailableError(
                f"Cannot load the backbone from {raw!r}: it is a file, not a model folder. "
                "Pass the folder that contains config.json and model.safetensors.",
                raw,
            )
        raise BackboneUnavailableError(
            f"Cannot load the backbone from the folder {raw!r}: it has no config.json. "
            "Pass a folder written by save_pretrained() or a Hugging Face snapshot "
            "folder (config.json + model.safetensors).",
            raw,
        )
    if _looks_like_path(raw):
        raise BackboneUnavailableError(
            f"Cannot load the backbone from {raw!r}: no such folder "
            f"(resolved to {path.absolute()}). Pass an existing model folder (containing "
            f"config.json), a catalog name ({model_names_help()}) or a Hugging Face repo id.",
            raw,
        )
    return None


def _in_env_location(
    env: str, label: str, spec: ModelSpec | None, repo_id: str, notes: list[str]
) -> WeightLocation | None:
    """Rule (b): the weights inside ``DINOV3_LOCATION``; appends to ``notes`` why not, if not."""
    root = Path(env).expanduser()
    if not root.is_dir():
        notes.append(f"{ENV_LOCATION}={env} is set but is not an existing folder.")
        return None
    repo_name = repo_id.rsplit("/", 1)[-1]
    if is_model_folder(root):
        if _env_folder_fits(root, spec, repo_name):
            return WeightLocation(label, spec, "folder", str(root), notes=notes)
        notes.append(
            f"{ENV_LOCATION}={env} holds a model folder that is not {label!r} "
            "(different architecture), so it was not used."
        )
    subdirs = [root / repo_name, root.joinpath(*repo_id.split("/"))]
    if spec is not None:
        subdirs.append(root / spec.key)
    for sub in subdirs:
        if is_model_folder(sub):
            return WeightLocation(label, spec, "folder", str(sub), notes=notes)
    cache = _hub_cache_in(root, repo_id)
    if cache is not None:
        return WeightLocation(label, spec, "hub", repo_id, {"cache_dir": str(cache)}, notes)
    if not is_model_folder(root):
        notes.append(
            f"{ENV_LOCATION}={env} holds no folder named {repo_name!r} and is not a Hugging Face cache directory."
        )
    return None


def _env_folder_fits(folder: Path, spec: ModelSpec | None, repo_name: str) -> bool:
    """Whether a model folder given as ``DINOV3_LOCATION`` holds the requested model.

    The default model takes it unconditionally (the common "I downloaded the weights" case);
    any other model must match by folder name or architecture, so a ViT-S folder is never
    silently run as the ViT-L the user asked for.
    """
    if spec is not None and spec.key == DEFAULT_MODEL:
        return True
    if folder.name in (repo_name, spec.key if spec else repo_name):
        return True
    return spec is not None and _config_matches(spec, _read_config(folder))


def locate_weights(name_or_path: str | None) -> tuple[str, dict[str, Any]]:
    """Where the weights of ``name_or_path`` come from, as ``(source, from_pretrained_kwargs)``.

    ``source`` is a local folder or a hub repo id; the kwargs (e.g. ``cache_dir``) go to
    ``from_pretrained``. Applies the rules of the module docstring without loading anything or
    touching the network; does not check that a hub repo is actually cached. Raises
    :class:`BackboneUnavailableError` for unknown names and missing local paths.
    """
    loc = locate(name_or_path)
    return loc.source, dict(loc.kwargs)


def cached_snapshot(repo_id: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` holding config + safetensors, else None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cfg = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except Exception:  # malformed cache or repo id
        return None
    if not isinstance(cfg, str):
        return None
    folder = Path(cfg).parent
    return folder if has_weights(folder) else None


def available_locally(spec: ModelSpec | str) -> str | None:
    """The folder the weights of ``spec`` would be loaded from without network access, or None."""
    try:
        loc = locate(spec.key if isinstance(spec, ModelSpec) else spec)
    except BackboneUnavailableError:
        return None
    if loc.kind == "folder":
        return loc.source if has_weights(Path(loc.source)) else None
    snap = cached_snapshot(loc.source, loc.cache_dir)
    return str(snap) if snap is not None else None


# --------------------------------------------------------------------------- error messages


def first_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``: enough to recognise a cause in one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def hub_failure_reason(exc: BaseException, where: str) -> str:
    """Why a hub download failed, in words.

    huggingface_hub's own exceptions decide (transformers wraps them, so the whole chain of
    causes is searched); the message text is the fallback for a wrapper that dropped its cause.
    """
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    gated = "the hub refused access: this is a gated model and you are not logged in or have not accepted its licence."
    missing = "the hub has no such model repository (or it is private)."
    for cause in _causes(exc):
        if isinstance(cause, GatedRepoError):  # a subclass of RepositoryNotFoundError: first
            return gated
        if isinstance(cause, RepositoryNotFoundError):
            return missing
        if isinstance(cause, LocalEntryNotFoundError):
            return f"its weights are {where}, and they cannot be downloaded now (offline, or the hub is unreachable)."
    text = str(exc).lower()
    if any(k in text for k in ("gated", "401", "403", "restricted", "authenticat")):
        return gated
    if any(k in text for k in ("404", "not a valid model identifier", "repository not")):
        return missing
    return f"its weights are {where} and downloading them failed."


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it was raised from or while handling, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def unavailable(loc: WeightLocation, reason: str, cause: BaseException | None = None) -> BackboneUnavailableError:
    """The error for weights that are neither local nor downloadable, listing every remedy."""
    spec = loc.spec
    repo_id = loc.source if loc.kind == "hub" else (spec.repo_id if spec else None)
    what = repr(loc.label)
    if repo_id and repo_id != loc.label:
        what += f" ({repo_id})"
    gated = spec.gated if spec is not None else bool(repo_id and "dinov3" in repo_id.lower())
    repo_name = (repo_id or "dinov3-vits16-pretrain-lvd1689m").rsplit("/", 1)[-1]
    lines = [f"Cannot load the backbone model {what}: {reason}", "To fix this, do one of:"]
    if gated:
        lines.append(
            "  - log in to Hugging Face (run `hf auth login`, or set the HF_TOKEN environment "
            "variable) and accept the DINOv3 licence on "
            f"https://huggingface.co/{repo_id}, then run once with internet access (the "
            "weights are cached for later offline use);"
        )
    else:
        lines.append(
            "  - run once with internet access (HF_HUB_OFFLINE unset) so the weights are downloaded and cached;"
        )
    lines += [
        f"  - set {ENV_LOCATION} to a downloaded copy: the model folder itself (with "
        f"config.json), a folder holding it as '{repo_name}', or a Hugging Face cache "
        "directory;",
        "  - pass the path of a local model folder (written by save_pretrained, or a hub snapshot) as the model;",
    ]
    if gated or spec is None:
        lines.append(f"  - or pick an open DINOv2 model that needs no licence, e.g. '{OPEN_FALLBACK_MODEL}'.")
    lines += [f"Note: {n}" for n in loc.notes]
    if cause is not None:
        lines.append(f"Details: {first_line(cause)}")
    err = BackboneUnavailableError("\n".join(lines), loc.label)
    err.__cause__ = cause
    return err
