"""Find, load and run DINOv3 / DINOv2 checkpoints as :class:`~.base.Backbone` objects.

Where the weights come from
---------------------------
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

Cached weights are always tried first without any network access. The hub is contacted only if
that fails and neither ``HF_HUB_OFFLINE`` nor ``TRANSFORMERS_OFFLINE`` is set, after a quick
(3 s) reachability check of the hub endpoint, and with short hub time-outs, so a missing model is
reported within seconds instead of after minutes of retries. Every failure is a
:class:`BackboneUnavailableError` whose message lists the remedies. Only ``model.safetensors``
weights are loaded and ``trust_remote_code`` is never used.

Precision and output
--------------------
``precision="auto"`` runs the model in bfloat16 on CUDA GPUs that support it (Ampere and newer;
float16 on older GPUs) and in float32 on CPU and Apple MPS. ``extract`` returns features
L2-normalised along the channel axis; on CPU they are always float32, on a GPU they stay in the
model's (half) precision to save memory and bandwidth -- call ``.float()`` if you need float32.

Importing this module does not import torch or transformers; they load on first use.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import InputError
from .catalog import (
    DEFAULT_MODEL,
    OPEN_FALLBACK_MODEL,
    ModelSpec,
    get_default_spec,
    model_names_help,
    resolve_model_name,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .base import Backbone, WorkGeometry

__all__ = [
    "ENV_LOCATION",
    "BackboneUnavailableError",
    "HFDinoBackbone",
    "available_locally",
    "default_dtype",
    "load_backbone",
    "locate_weights",
    "select_device",
]

log = logging.getLogger(__name__)

ENV_LOCATION = "DINOV3_LOCATION"
"""Environment variable naming a folder with downloaded weights (see the module docstring)."""

HUB_PROBE_TIMEOUT_S = 3.0
HUB_ETAG_TIMEOUT_S = 5.0
HUB_DOWNLOAD_TIMEOUT_S = 15.0
DEFAULT_BATCH_SIZE = 8

SUPPORTED_MODEL_TYPES = {"dinov3_vit": "dinov3", "dinov2": "dinov2",
                         "dinov2_with_registers": "dinov2"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_TRUE = {"1", "true", "yes", "on"}


class BackboneUnavailableError(RuntimeError):
    """The requested backbone cannot be loaded; the message says why and how to fix it.

    ``model`` is the name or path that was asked for.
    """

    def __init__(self, message: str, model: str | None = None):
        super().__init__(message)
        self.model = model


# --------------------------------------------------------------------------- device / dtype


def select_device(override: str | torch.device | None = None) -> torch.device:
    """The torch device to run on.

    ``override`` wins when given: ``"cpu"``, ``"cuda"`` / ``"gpu"`` (current CUDA device),
    ``"cuda:1"`` / ``"cuda1"``, a bare index ``"0"`` (= ``cuda:0``), ``"mps"``, or ``"auto"``
    (same as None). Without one: CUDA, then Apple MPS, then CPU. An unknown or unavailable
    override raises ValueError.
    """
    import torch

    if isinstance(override, torch.device):
        override = str(override)
    text = (override or "auto").strip().lower()
    cuda_ok = torch.cuda.is_available()
    mps_ok = _mps_available()
    if text == "auto":
        if cuda_ok:
            return torch.device("cuda", torch.cuda.current_device())
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not mps_ok:
            raise InputError("device 'mps' was requested but Apple MPS is not available here")
        return torch.device("mps")
    m = re.fullmatch(r"(?:(?:cuda|gpu):?)?(\d+)|cuda|gpu", text)
    if m is None:
        raise InputError(
            f"unknown device {override!r}; use 'auto', 'cpu', 'cuda', 'cuda:N', 'N' (a GPU "
            "index) or 'mps'"
        )
    if not cuda_ok:
        raise InputError(
            f"device {override!r} was requested but CUDA is not available (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'cpu' or 'auto'"
        )
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError(f"device {override!r} was requested but only {count} CUDA GPU(s) exist")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


_PRECISIONS = {
    "fp32": "float32", "float32": "float32", "float": "float32", "32": "float32",
    "fp16": "float16", "float16": "float16", "half": "float16", "16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}


def default_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype:
    """The model dtype for ``device``.

    ``"auto"``: bfloat16 on CUDA GPUs that support it (float16 on older ones), float32 on CPU
    and MPS. Explicit: ``"fp32"``, ``"fp16"``, ``"bf16"`` (and their long spellings).
    """
    import torch

    device = torch.device(device)
    text = (precision or "auto").strip().lower()
    if text == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if text not in _PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use 'auto', 'fp32', 'fp16' or 'bf16'")
    return getattr(torch, _PRECISIONS[text])


# --------------------------------------------------------------------------- locating weights


@dataclass
class _Location:
    label: str  # what the user asked for, for messages
    spec: ModelSpec | None
    kind: str  # "folder" | "hub"
    source: str  # folder path or repo id
    kwargs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _offline() -> str | None:
    """Name of the setting that forbids network access, or None."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _env_true(var):
            return var
    return None


def _default_hub_cache() -> str:
    """The hub cache directory, from the environment as it is *now* (not at import time)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(xdg), "huggingface", "hub")


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~", "\\"))
        or "\\" in name
        or name.count("/") >= 2
        or bool(re.match(r"^[A-Za-z]:[\\/]", name))
    )


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _has_weights(folder: Path) -> bool:
    return any((folder / f).is_file() for f in WEIGHT_FILES)


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _config_matches(spec: ModelSpec, cfg: dict[str, Any]) -> bool:
    """Whether a ``config.json`` describes the architecture of ``spec``."""
    if SUPPORTED_MODEL_TYPES.get(cfg.get("model_type", "")) != spec.family:
        return False
    patch = cfg.get("patch_size")
    if isinstance(patch, list | tuple):
        patch = patch[0]
    swiglu = bool(cfg.get("use_gated_mlp", cfg.get("use_swiglu_ffn", False)))
    return (
        cfg.get("hidden_size") == spec.feature_dim
        and cfg.get("num_hidden_layers") == spec.depth
        and patch == spec.patch_size
        and swiglu == spec.swiglu
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


def _locate(name: str | None) -> _Location:
    """Apply rules (a), (b), (c) of the module docstring."""
    raw = (name or "").strip()
    label = raw or DEFAULT_MODEL
    spec = resolve_model_name(raw) if raw else get_default_spec()

    # (a) an existing local folder
    if raw:
        path = Path(raw).expanduser()
        if _is_model_folder(path):
            return _Location(label, None, "folder", str(path))
        if spec is None and path.exists():
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
        if spec is None and _looks_like_path(raw):
            raise BackboneUnavailableError(
                f"Cannot load the backbone from {raw!r}: no such folder "
                f"(resolved to {path.absolute()}). Pass an existing model folder (containing "
                f"config.json), a catalog name ({model_names_help()}) or a Hugging Face repo id.",
                raw,
            )
    if spec is None and not _REPO_ID.match(raw):
        raise BackboneUnavailableError(
            f"Unknown backbone model {raw!r}. Known models: {model_names_help()} (short aliases "
            "such as 'vits16' or 'dinov2-small' work too); you can also pass a local model "
            "folder, a Hugging Face repo id such as 'facebook/dinov2-small', or 'pixel:' (a "
            "weight-free test backbone).",
            raw,
        )
    repo_id = spec.repo_id if spec is not None else raw
    repo_name = repo_id.rsplit("/", 1)[-1]
    is_default = spec is not None and spec.key == DEFAULT_MODEL
    notes: list[str] = []

    # (b) DINOV3_LOCATION
    env = os.environ.get(ENV_LOCATION, "").strip()
    if env:
        loc = Path(env).expanduser()
        if not loc.is_dir():
            notes.append(f"{ENV_LOCATION}={env} is set but is not an existing folder.")
        else:
            if _is_model_folder(loc):
                if (
                    is_default
                    or loc.name in (repo_name, spec.key if spec else repo_name)
                    or (spec is not None and _config_matches(spec, _read_config(loc)))
                ):
                    return _Location(label, spec, "folder", str(loc), notes=notes)
                notes.append(
                    f"{ENV_LOCATION}={env} holds a model folder that is not {label!r} "
                    "(different architecture), so it was not used."
                )
            subdirs = [loc / repo_name, loc.joinpath(*repo_id.split("/"))]
            if spec is not None:
                subdirs.append(loc / spec.key)
            for sub in subdirs:
                if _is_model_folder(sub):
                    return _Location(label, spec, "folder", str(sub), notes=notes)
            cache = _hub_cache_in(loc, repo_id)
            if cache is not None:
                return _Location(label, spec, "hub", repo_id, {"cache_dir": str(cache)}, notes)
            if not _is_model_folder(loc):
                notes.append(
                    f"{ENV_LOCATION}={env} holds no folder named {repo_name!r} and is not a "
                    "Hugging Face cache directory."
                )

    # (c) the normal hub cache, then the hub
    return _Location(label, spec, "hub", repo_id, {"cache_dir": _default_hub_cache()}, notes)


def locate_weights(name_or_path: str | None) -> tuple[str, dict[str, Any]]:
    """Where the weights of ``name_or_path`` come from, as ``(source, from_pretrained_kwargs)``.

    ``source`` is a local folder or a hub repo id; the kwargs (e.g. ``cache_dir``) go to
    ``from_pretrained``. Applies the rules of the module docstring without loading anything or
    touching the network; does not check that a hub repo is actually cached. Raises
    :class:`BackboneUnavailableError` for unknown names and missing local paths.
    """
    loc = _locate(name_or_path)
    return loc.source, dict(loc.kwargs)


def _cached_snapshot(repo_id: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` holding config + safetensors, else None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cfg = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except Exception:  # malformed cache or repo id
        return None
    if not isinstance(cfg, str):
        return None
    folder = Path(cfg).parent
    return folder if _has_weights(folder) else None


def available_locally(spec: ModelSpec | str) -> str | None:
    """The folder the weights of ``spec`` would be loaded from without network access, or None."""
    try:
        loc = _locate(spec.key if isinstance(spec, ModelSpec) else spec)
    except BackboneUnavailableError:
        return None
    if loc.kind == "folder":
        return loc.source if _has_weights(Path(loc.source)) else None
    snap = _cached_snapshot(loc.source, loc.kwargs.get("cache_dir"))
    return str(snap) if snap is not None else None


# --------------------------------------------------------------------------- the hub


def _probe(host: str, port: int, timeout: float, result: list[bool]) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        result.append(True)
    except OSError:
        result.append(False)


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """A quick TCP check that the hub endpoint (or the configured HTTPS proxy) answers."""
    target = None
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        if os.environ.get(var):
            target = os.environ[var]
            break
    if target is None:
        target = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if "://" not in target:
        target = "http://" + target
    parts = urlsplit(target)
    if not parts.hostname:
        return True  # cannot tell; let the hub client decide
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return True
    result: list[bool] = []
    t = threading.Thread(target=_probe, args=(parts.hostname, port, timeout, result), daemon=True)
    t.start()
    t.join(timeout + 0.5)  # getaddrinfo has no timeout of its own
    return bool(result and result[0])


@contextmanager
def _short_hub_timeouts() -> Iterator[None]:
    """Lower huggingface_hub's metadata/download time-outs for one call.

    The HF_HUB_*_TIMEOUT environment variables are only read when huggingface_hub is imported,
    so the module constants are patched (and restored) instead.
    """
    from huggingface_hub import constants

    old = (constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
    constants.HF_HUB_ETAG_TIMEOUT = min(old[0], HUB_ETAG_TIMEOUT_S)
    constants.HF_HUB_DOWNLOAD_TIMEOUT = min(old[1], HUB_DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT = old


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _unavailable(loc: _Location, reason: str, cause: BaseException | None = None
                 ) -> BackboneUnavailableError:
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
            "  - run once with internet access (HF_HUB_OFFLINE unset) so the weights are "
            "downloaded and cached;"
        )
    lines += [
        f"  - set {ENV_LOCATION} to a downloaded copy: the model folder itself (with "
        f"config.json), a folder holding it as '{repo_name}', or a Hugging Face cache "
        "directory;",
        "  - pass the path of a local model folder (written by save_pretrained, or a hub "
        "snapshot) as the model;",
    ]
    if gated or spec is None:
        lines.append(
            f"  - or pick an open DINOv2 model that needs no licence, e.g. '{OPEN_FALLBACK_MODEL}'."
        )
    lines += [f"Note: {n}" for n in loc.notes]
    if cause is not None:
        lines.append(f"Details: {_first_line(cause)}")
    err = BackboneUnavailableError("\n".join(lines), loc.label)
    err.__cause__ = cause
    return err


# --------------------------------------------------------------------------- loading


def _load_model(loc: _Location, dtype: torch.dtype) -> tuple[Any, str, bool]:
    """Load the transformers model for ``loc``: (model, folder it came from, used_network)."""
    if loc.kind == "folder":
        folder = Path(loc.source)
        if not _has_weights(folder):
            raise BackboneUnavailableError(
                f"Cannot load the backbone from the folder {loc.source!r}: it has no "
                "model.safetensors (only safetensors weights are loaded; convert or re-save "
                "the model with save_pretrained()).",
                loc.label,
            )
        try:
            return _from_pretrained(loc.source, {}, dtype, local_only=True), loc.source, False
        except BackboneUnavailableError:
            raise
        except Exception as exc:
            raise BackboneUnavailableError(
                f"Cannot load the backbone from the folder {loc.source!r}: {_first_line(exc)}",
                loc.label,
            ) from exc

    cache_dir = loc.kwargs.get("cache_dir")
    snap = _cached_snapshot(loc.source, cache_dir)
    local_error: BaseException | None = None
    if snap is not None:
        try:
            model = _from_pretrained(loc.source, loc.kwargs, dtype, local_only=True)
            return model, str(snap), False
        except BackboneUnavailableError:
            raise
        except Exception as exc:  # incomplete cache and the like: try the hub
            local_error = exc
    where = f"not in the Hugging Face cache ({cache_dir})"
    offline = _offline()
    if offline:
        raise _unavailable(
            loc, f"its weights are {where} and {offline}=1 forbids downloading them.",
            local_error,
        )
    if not _hub_reachable():
        raise _unavailable(
            loc, f"its weights are {where} and the Hugging Face hub cannot be reached "
            "(no internet connection?).", local_error,
        )
    try:
        with _short_hub_timeouts():
            model = _from_pretrained(loc.source, loc.kwargs, dtype, local_only=False)
    except BackboneUnavailableError:
        raise
    except Exception as exc:
        text = str(exc).lower()
        if any(k in text for k in ("gated", "401", "403", "restricted", "authenticat")):
            reason = ("the hub refused access: this is a gated model and you are not logged in "
                      "or have not accepted its licence.")
        elif any(k in text for k in ("404", "not a valid model identifier", "repository not")):
            reason = "the hub has no such model repository (or it is private)."
        else:
            reason = f"its weights are {where} and downloading them failed."
        raise _unavailable(loc, reason, exc) from exc
    snap = _cached_snapshot(loc.source, cache_dir)
    return model, str(snap) if snap else loc.source, True


def _from_pretrained(source: str, kwargs: dict[str, Any], dtype: torch.dtype, *,
                     local_only: bool) -> Any:
    from transformers import AutoConfig, AutoModel

    common = dict(kwargs, local_files_only=local_only, trust_remote_code=False)
    config = AutoConfig.from_pretrained(source, **common)
    model_type = getattr(config, "model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise BackboneUnavailableError(
            f"Cannot use {source!r} as a backbone: its architecture is {model_type!r}, but only "
            f"DINOv3 ViT and DINOv2 models are supported ({', '.join(SUPPORTED_MODEL_TYPES)}).",
            source,
        )
    return AutoModel.from_pretrained(
        source, config=config, dtype=dtype, use_safetensors=True, **common
    )


def _read_norm_stats(folder: str | None, repo_id: str | None, cache_dir: str | None,
                     online: bool) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``image_mean``/``image_std`` from the checkpoint's preprocessor_config.json, if any."""
    path: str | None = None
    if folder is not None and os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
        path = os.path.join(folder, "preprocessor_config.json")
    elif repo_id is not None:
        from huggingface_hub import try_to_load_from_cache

        try:
            found = try_to_load_from_cache(repo_id, "preprocessor_config.json",
                                           cache_dir=cache_dir)
            if isinstance(found, str):
                path = found
            elif online:
                from huggingface_hub import hf_hub_download

                with _short_hub_timeouts():
                    path = hf_hub_download(repo_id, "preprocessor_config.json",
                                           cache_dir=cache_dir)
        except Exception as exc:
            log.debug("no preprocessor_config.json for %s: %s", repo_id, exc)
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        mean = tuple(float(v) for v in data["image_mean"])
        std = tuple(float(v) for v in data["image_std"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        log.warning("ignoring %s: image_mean/image_std are not 3 positive values", path)
        return None
    return mean, std


class HFDinoBackbone:
    """A transformers DINOv3 ViT / DINOv2 model as a :class:`~.base.Backbone`.

    Build it with :func:`load_backbone` (or :meth:`from_name`). ``extract`` drops the special
    tokens (CLS + registers) and returns the patch grid, L2-normalised along channels.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        source: str = "",
        spec: ModelSpec | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        from .preprocess import IMAGENET_MEAN, IMAGENET_STD

        cfg = model.config
        if cfg.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"unsupported architecture {cfg.model_type!r}")
        patch = cfg.patch_size
        self.name = name
        self.patch_size = int(patch[0] if isinstance(patch, list | tuple) else patch)
        self.feature_dim = int(cfg.hidden_size)
        self.device = device
        self.dtype = dtype
        self.family = SUPPORTED_MODEL_TYPES[cfg.model_type]
        self.num_special_tokens = 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.mean = tuple(mean) if mean is not None else IMAGENET_MEAN
        self.std = tuple(std) if std is not None else IMAGENET_STD
        self.source = source
        self.spec = spec
        self.batch_size = max(1, int(batch_size))
        # from_pretrained(dtype=...) already cast the weights and keeps some buffers (DINOv3's
        # RoPE frequencies) in float32 on purpose; cast only models built some other way
        if next(model.parameters()).dtype != dtype:
            model = model.to(dtype=dtype)
        self.model = model.to(device=device).eval()

    @classmethod
    def from_name(
        cls,
        name_or_path: str | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> HFDinoBackbone:
        """Locate and load a checkpoint (see the module docstring for where it is looked up)."""
        loc = _locate(name_or_path)
        dev = select_device(device)
        dtype = default_dtype(dev, precision)
        t0 = time.perf_counter()
        model, folder, online = _load_model(loc, dtype)
        stats = _read_norm_stats(
            folder if os.path.isdir(folder) else None,
            loc.source if loc.kind == "hub" else None,
            loc.kwargs.get("cache_dir"),
            online,
        )
        if loc.kind == "hub":
            name = loc.spec.key if loc.spec is not None else loc.source
        else:
            name = (name_or_path or "").strip() or loc.source
        backbone = cls(
            model, name=name, device=dev, dtype=dtype,
            mean=stats[0] if stats else None, std=stats[1] if stats else None,
            source=folder, spec=loc.spec, batch_size=batch_size,
        )
        log.info("loaded backbone %s from %s on %s (%s) in %.2f s", name, folder, dev,
                 str(dtype).removeprefix("torch."), time.perf_counter() - t0)
        return backbone

    def __repr__(self) -> str:
        return (f"HFDinoBackbone(name={self.name!r}, patch_size={self.patch_size}, "
                f"feature_dim={self.feature_dim}, device={self.device}, dtype={self.dtype})")

    def extract(self, frames: np.ndarray | torch.Tensor, geometry: WorkGeometry) -> torch.Tensor:
        """(B, H, W, 3) or (H, W, 3) uint8 RGB -> (B, C, grid_h, grid_w) unit-norm features.

        Frames are processed ``batch_size`` at a time. float32 on CPU, the model dtype on GPUs.
        """
        import torch
        import torch.nn.functional as F

        from .preprocess import to_working_tensor

        if geometry.patch_size != self.patch_size:
            raise ValueError(
                f"geometry patch size {geometry.patch_size} does not match the backbone's "
                f"{self.patch_size}; build it with compute_geometry(..., backbone.patch_size)"
            )
        if frames.ndim == 3:
            frames = frames[None]
        out_dtype = torch.float32 if self.device.type == "cpu" else self.dtype
        gh, gw = geometry.grid_height, geometry.grid_width
        expected = gh * gw + self.num_special_tokens
        chunks = []
        with torch.inference_mode():
            for start in range(0, frames.shape[0], self.batch_size):
                x = to_working_tensor(
                    frames[start:start + self.batch_size], geometry, self.device, self.dtype,
                    mean=self.mean, std=self.std,
                )
                tokens = self.model(pixel_values=x).last_hidden_state
                if tokens.shape[1] != expected:
                    raise RuntimeError(
                        f"{self.name}: got {tokens.shape[1]} tokens for a {gh}x{gw} patch grid, "
                        f"expected {gh * gw} patches + {self.num_special_tokens} special tokens "
                        f"= {expected} (input {tuple(x.shape)})"
                    )
                patches = tokens[:, self.num_special_tokens:, :]
                grid = patches.reshape(x.shape[0], gh, gw, self.feature_dim).permute(0, 3, 1, 2)
                grid = F.normalize(grid.float(), dim=1, eps=1e-6)
                chunks.append(grid.to(out_dtype).contiguous())
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


def load_backbone(
    model: str | os.PathLike[str] | Backbone | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Backbone:
    """The backbone called ``model``.

    * None -> :data:`~.catalog.DEFAULT_MODEL` (or the ``DINOV3_LOCATION`` model folder);
    * a :class:`~.base.Backbone` instance is returned unchanged;
    * ``"scheme:argument"`` names of registered backbones (e.g. ``"pixel:"``) go to their
      factory as ``factory(argument, device=..., precision=...)``;
    * anything else is a catalog key/alias, repo id or local folder, loaded as
      :class:`HFDinoBackbone` (see the module docstring for the lookup order).

    Raises :class:`BackboneUnavailableError` when the weights cannot be found or fetched and
    ValueError for a bad ``device``/``precision``.
    """
    from . import pixel  # noqa: F401  (registers "pixel:")
    from .base import Backbone, lookup_backbone_factory

    if model is not None and not isinstance(model, str | os.PathLike):
        if isinstance(model, Backbone):
            return model
        raise TypeError(f"model must be a name, a path or a Backbone, not {type(model).__name__}")
    name = os.fspath(model) if model is not None else None
    if name is not None and not isinstance(model, os.PathLike):
        found = lookup_backbone_factory(name.strip())
        if found is not None:
            factory, argument = found
            dev = select_device(device) if device is not None else None
            return factory(argument, device=dev, precision=precision)
    return HFDinoBackbone.from_name(name, device=device, precision=precision,
                                    batch_size=batch_size)
