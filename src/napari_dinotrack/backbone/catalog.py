"""The DINO checkpoints napari-dinotrack knows by name, and how names resolve to them.

Pure data and string handling: importing this module does not import torch or transformers.

Every model can be named by its catalog ``key`` (``"dinov3-vits16"``), its Hugging Face repo id
(``"facebook/dinov3-vits16-pretrain-lvd1689m"``), the repo id's last part, or a short alias
(``"vits16"``, ``"dinov3-small"``, ``"dinov2-small"``...). Matching ignores case, and ``_`` or
spaces count as ``-``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """One known checkpoint.

    ``gated`` models need a Hugging Face login and an accepted licence before the hub serves
    them. ``feature_dim``/``depth``/``patch_size``/``swiglu`` describe the architecture, so a
    local folder's ``config.json`` can be recognised as this model.
    """

    key: str
    repo_id: str
    family: str  # "dinov3" | "dinov2"
    size: str
    gated: bool
    description: str
    aliases: tuple[str, ...] = ()
    patch_size: int = 16
    feature_dim: int = 0
    depth: int = 0
    swiglu: bool = False

    @property
    def repo_name(self) -> str:
        """The repo id's last part, e.g. ``"dinov3-vits16-pretrain-lvd1689m"``."""
        return self.repo_id.rsplit("/", 1)[-1]


_CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        "dinov3-vits16",
        "facebook/dinov3-vits16-pretrain-lvd1689m",
        "dinov3",
        "S",
        True,
        "DINOv3 ViT-S/16 (21M params, 384-d features); default, fast on CPU",
        (
            "vits16",
            "vit-s/16",
            "vit-s16",
            "vits",
            "dinov3-small",
            "dinov3-s",
            "dinov3-vits",
            "dinov3",
            "small",
            "default",
        ),
        16,
        384,
        12,
        False,
    ),
    ModelSpec(
        "dinov3-vits16plus",
        "facebook/dinov3-vits16plus-pretrain-lvd1689m",
        "dinov3",
        "S+",
        True,
        "DINOv3 ViT-S+/16 (29M params, 384-d features, SwiGLU MLP)",
        (
            "vits16plus",
            "vits16+",
            "vit-s+/16",
            "vits+",
            "vits-plus",
            "dinov3-small-plus",
            "dinov3-vits16+",
            "dinov3-s+",
            "small-plus",
        ),
        16,
        384,
        12,
        True,
    ),
    ModelSpec(
        "dinov3-vitb16",
        "facebook/dinov3-vitb16-pretrain-lvd1689m",
        "dinov3",
        "B",
        True,
        "DINOv3 ViT-B/16 (86M params, 768-d features)",
        ("vitb16", "vit-b/16", "vit-b16", "vitb", "dinov3-base", "dinov3-b", "dinov3-vitb", "base"),
        16,
        768,
        12,
        False,
    ),
    ModelSpec(
        "dinov3-vitl16",
        "facebook/dinov3-vitl16-pretrain-lvd1689m",
        "dinov3",
        "L",
        True,
        "DINOv3 ViT-L/16 (300M params, 1024-d features); GPU recommended",
        ("vitl16", "vit-l/16", "vit-l16", "vitl", "dinov3-large", "dinov3-l", "dinov3-vitl", "large"),
        16,
        1024,
        24,
        False,
    ),
    ModelSpec(
        "dinov3-vith16plus",
        "facebook/dinov3-vith16plus-pretrain-lvd1689m",
        "dinov3",
        "H+",
        True,
        "DINOv3 ViT-H+/16 (840M params, 1280-d features, SwiGLU MLP); GPU required in practice",
        (
            "vith16plus",
            "vith16+",
            "vit-h+/16",
            "vith+",
            "vith-plus",
            "dinov3-huge-plus",
            "dinov3-huge",
            "dinov3-h+",
            "dinov3-vith16+",
            "huge",
        ),
        16,
        1280,
        32,
        True,
    ),
    ModelSpec(
        "dinov2-small",
        "facebook/dinov2-small",
        "dinov2",
        "S",
        False,
        "DINOv2 ViT-S/14 (22M params, 384-d features); open, no login needed",
        ("dinov2-s", "dinov2-vits14", "dinov2-vits", "vits14", "dinov2"),
        14,
        384,
        12,
        False,
    ),
    ModelSpec(
        "dinov2-base",
        "facebook/dinov2-base",
        "dinov2",
        "B",
        False,
        "DINOv2 ViT-B/14 (86M params, 768-d features); open, no login needed",
        ("dinov2-b", "dinov2-vitb14", "dinov2-vitb", "vitb14"),
        14,
        768,
        12,
        False,
    ),
    ModelSpec(
        "dinov2-large",
        "facebook/dinov2-large",
        "dinov2",
        "L",
        False,
        "DINOv2 ViT-L/14 (300M params, 1024-d features); open, no login needed",
        ("dinov2-l", "dinov2-vitl14", "dinov2-vitl", "vitl14"),
        14,
        1024,
        24,
        False,
    ),
)

DEFAULT_MODEL: str = "dinov3-vits16"
"""Catalog key of the model used when none is named."""

OPEN_FALLBACK_MODEL: str = "dinov2-small"
"""An open (not gated) model to suggest when the gated DINOv3 weights are unavailable."""


def _normalise(name: str) -> str:
    return "-".join(name.strip().lower().replace("_", "-").split())


def _build_index() -> dict[str, ModelSpec]:
    index: dict[str, ModelSpec] = {}
    for spec in _CATALOG:
        for name in (spec.key, spec.repo_id, spec.repo_name, *spec.aliases):
            norm = _normalise(name)
            if norm in index and index[norm] is not spec:
                raise RuntimeError(f"catalog alias {name!r} is ambiguous")
            index[norm] = spec
    return index


_INDEX = _build_index()


def list_models() -> list[ModelSpec]:
    """All catalog entries, default first, then DINOv3 by size, then DINOv2."""
    return list(_CATALOG)


def get_default_spec() -> ModelSpec:
    """The :class:`ModelSpec` of :data:`DEFAULT_MODEL`."""
    return _INDEX[DEFAULT_MODEL]


def resolve_model_name(name: str | None) -> ModelSpec | None:
    """The catalog entry called ``name`` (key, repo id, repo name or alias), else None.

    ``None`` or an empty string resolves to :data:`DEFAULT_MODEL`.
    """
    if name is None or not name.strip():
        return get_default_spec()
    return _INDEX.get(_normalise(name))


def model_names_help() -> str:
    """One line listing the catalog keys, for error messages and ``--help`` texts."""
    return ", ".join(spec.key for spec in _CATALOG)
