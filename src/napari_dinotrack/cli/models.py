"""``napari-dinotrack models``: the backbone catalog, where weights are found, and a load check."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from ..runsettings import PRECISIONS, RunSettings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models",
        help="list the known backbone models and whether their weights are available",
        description="List the known backbone models and where their weights are found "
        "locally; with --check, try to load one (a catalog name, alias, repo id or folder).",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--check", metavar="NAME_OR_DIR", help="load this model and report its feature dim and patch size"
    )
    parser.add_argument(
        "--device", default=RunSettings().device, help="device for --check: auto (default), cpu, cuda, cuda:N, N, mps"
    )
    parser.add_argument(
        "--precision",
        default=RunSettings().precision,
        choices=PRECISIONS,
        help="precision for --check (default %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        return _check_model(args)
    from ..backbone.catalog import DEFAULT_MODEL, list_models
    from ..backbone.loader import ENV_LOCATION, available_locally

    rows: list[dict[str, Any]] = [
        {
            "key": spec.key,
            "repo_id": spec.repo_id,
            "family": spec.family,
            "size": spec.size,
            "gated": spec.gated,
            "default": spec.key == DEFAULT_MODEL,
            "patch_size": spec.patch_size,
            "feature_dim": spec.feature_dim,
            "description": spec.description,
            "aliases": list(spec.aliases),
            "local_path": available_locally(spec),
        }
        for spec in list_models()
    ]
    if args.json:
        print(
            json.dumps(
                {"default": DEFAULT_MODEL, "dinov3_location": os.environ.get(ENV_LOCATION) or None, "models": rows},
                indent=2,
            )
        )
        return 0
    head = ("key", "repo id", "family", "access", "weights")
    table = [
        (
            ("* " if r["default"] else "  ") + r["key"],
            r["repo_id"],
            f"{r['family']} {r['size']}",
            "gated" if r["gated"] else "open",
            r["local_path"] or "not downloaded",
        )
        for r in rows
    ]
    widths = [max(len(head[i]) + (2 if i == 0 else 0), *(len(t[i]) for t in table)) for i in range(len(head) - 1)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    print(fmt(("  " + head[0], *head[1:])))
    for t in table:
        print(fmt(t))
    print(f"\n* = default. {ENV_LOCATION}={os.environ.get(ENV_LOCATION) or '(not set)'}")
    print(
        "Gated models need `hf auth login` (or HF_TOKEN) and the DINOv3 licence accepted on "
        "huggingface.co; check one with: napari-dinotrack models --check NAME_OR_FOLDER"
    )
    return 0


def _check_model(args: argparse.Namespace) -> int:
    from ..backbone.loader import load_backbone
    from ..errors import BackboneUnavailableError

    t0 = time.perf_counter()
    try:
        backbone = load_backbone(args.check, device=args.device, precision=args.precision)
    except BackboneUnavailableError as exc:
        if args.json:
            print(json.dumps({"ok": False, "model": args.check, "error": str(exc)}, indent=2))
        raise
    seconds = time.perf_counter() - t0
    info = {
        "ok": True,
        "model": args.check,
        "name": backbone.name,
        "feature_dim": backbone.feature_dim,
        "patch_size": backbone.patch_size,
        "device": str(backbone.device),
        "dtype": str(getattr(backbone, "dtype", "")).removeprefix("torch.") or None,
        "source": getattr(backbone, "source", None),
        "load_seconds": round(seconds, 3),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(
            f"OK {backbone.name}: feature dim {backbone.feature_dim}, patch size "
            f"{backbone.patch_size}, {info['device']}"
            + (f" {info['dtype']}" if info["dtype"] else "")
            + (f", loaded from {info['source']}" if info["source"] else "")
            + f" in {seconds:.2f} s"
        )
    return 0
