"""The ``napari-dinotrack`` command line.

Sub-commands are added in :func:`build_parser`; each sets ``func`` (``func(args) -> int``) on its
sub-parser. Exit codes: 0 success, 2 bad input or an unavailable model (a one-paragraph message on
stderr, no traceback), 1 an internal error (with traceback), 130 interrupted.

Heavy modules (torch, transformers) are imported only by the commands that need them, so
``napari-dinotrack models`` answers quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence

from . import __version__
from .backbone.catalog import DEFAULT_MODEL
from .errors import InputError, is_input_error


def _is_input_error(exc: BaseException) -> bool:
    """Errors that the user must fix (exit code 2) rather than bugs (exit code 1)."""
    return isinstance(exc, FileNotFoundError) or is_input_error(exc)


def _cmd_models(args: argparse.Namespace) -> int:
    if args.check:
        return _check_model(args)
    from .backbone.catalog import DEFAULT_MODEL, list_models
    from .backbone.loader import ENV_LOCATION, available_locally

    rows = []
    for spec in list_models():
        rows.append({
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
        })
    if args.json:
        print(json.dumps({"default": DEFAULT_MODEL,
                          "dinov3_location": os.environ.get(ENV_LOCATION) or None,
                          "models": rows}, indent=2))
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
    widths = [max(len(head[i]) + (2 if i == 0 else 0), *(len(t[i]) for t in table))
              for i in range(len(head) - 1)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    print(fmt(("  " + head[0], *head[1:])))
    for t in table:
        print(fmt(t))
    print(f"\n* = default. {ENV_LOCATION}={os.environ.get(ENV_LOCATION) or '(not set)'}")
    print("Gated models need `hf auth login` (or HF_TOKEN) and the DINOv3 licence accepted on "
          "huggingface.co; check one with: napari-dinotrack models --check NAME_OR_FOLDER")
    return 0


def _check_model(args: argparse.Namespace) -> int:
    from .backbone.loader import BackboneUnavailableError, load_backbone

    t0 = time.perf_counter()
    try:
        backbone = load_backbone(args.check, device=args.device, precision=args.precision)
    except BackboneUnavailableError as exc:
        if args.json:
            print(json.dumps({"ok": False, "model": args.check, "error": str(exc)}, indent=2))
        raise InputError(str(exc)) from exc
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
        print(f"OK {backbone.name}: feature dim {backbone.feature_dim}, patch size "
              f"{backbone.patch_size}, {info['device']}"
              + (f" {info['dtype']}" if info["dtype"] else "")
              + (f", loaded from {info['source']}" if info["source"] else "")
              + f" in {seconds:.2f} s")
    return 0


class _ProgressBar:
    """One self-overwriting progress line on stderr (a new line every few seconds when not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.quiet or (done < total and now - self.last < (0.2 if self.tty else 5.0)):
            return
        self.last = now
        elapsed = now - self.started
        fps = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / fps if fps > 0 else float("nan")
        width = 30
        filled = int(width * done / max(total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames  {fps:5.1f} fps  "
                f"{left:5.0f} s left")
        print(("\r" if self.tty else "") + line, end="" if self.tty and done < total else "\n",
              file=sys.stderr, flush=True)


def _cmd_track(args: argparse.Namespace) -> int:
    from .tracking.config import TrackerConfig

    if args.config and args.preset:
        raise InputError("use either --config or --preset, not both")
    try:
        if args.config:
            config = TrackerConfig.load(args.config)
        elif args.preset:
            config = TrackerConfig.preset(args.preset)
        else:
            config = TrackerConfig()
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if args.batch_size is not None:
        config.batch_size = args.batch_size
        try:
            config.validate()
        except ValueError as exc:
            raise InputError(str(exc)) from exc

    from .pipeline import DinoKeypointVideoProcessor

    if args.quiet:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    progress = _ProgressBar(args.quiet)
    processor = DinoKeypointVideoProcessor(
        args.video, result_folder=args.out, model_name=args.model, short_side=args.short_side,
        device=args.device, runtime_config=config, progress_callback=progress, precision=args.precision,
    )
    plan = processor.plan(args.start_frame, args.end_frame)
    if plan is None:
        print(f"All frames of {processor.video_path.name} are already tracked (results in "
              f"{processor.layout.folder}); use --start-frame N to track again from frame N.")
        return 0
    if not args.quiet:
        print(f"Tracking {processor.video_path.name} frames {plan.first}..{plan.last} from frame "
              f"{plan.init_frame} with {args.model} -> {processor.layout.folder}", file=sys.stderr)
    summary = processor.process_video(args.start_frame, args.end_frame)
    print(f"Tracked {summary.frames_tracked} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s); "
          f"results in {processor.layout.folder}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from .synthetic import write_sample

    video = write_sample(args.folder, n_frames=args.frames, n_instances=args.animals)
    print(f"Wrote {video} and its labelled frame 0; track it with:\n"
          f"  napari-dinotrack track {video} --model pixel:   (no weights needed)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(
        prog="napari-dinotrack",
        description="Track animal keypoints through videos with DINOv3 patch features.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser(
        "models",
        help="list the known backbone models and whether their weights are available",
        description="List the known backbone models and where their weights are found "
        "locally; with --check, try to load one (a catalog name, alias, repo id or folder).",
    )
    models.add_argument("--json", action="store_true", help="print machine-readable JSON")
    models.add_argument("--check", metavar="NAME_OR_DIR",
                        help="load this model and report its feature dim and patch size")
    models.add_argument("--device", default=None,
                        help="device for --check: auto (default), cpu, cuda, cuda:N, N, mps")
    models.add_argument("--precision", default="auto",
                        help="precision for --check: auto (default), fp32, fp16, bf16")
    models.set_defaults(func=_cmd_models)

    track = sub.add_parser(
        "track",
        help="track the labelled keypoints of a video",
        description="Track every keypoint labelled on the video's manual frames (LabelMe JSON in the "
        "result folder) to the end of the video, writing per-frame LabelMe JSON and a CSV as it goes. "
        "Run it again to resume after a stop, or after correcting a frame to re-track from there.",
    )
    track.add_argument("video", help="the video file (mp4, avi, mov, mkv)")
    track.add_argument("--model", default=DEFAULT_MODEL,
                       help="backbone: catalog name, Hugging Face id or local save_pretrained folder "
                       f"(default {DEFAULT_MODEL}; see `napari-dinotrack models`)")
    track.add_argument("--short-side", type=int, default=768, help="working resolution (default 768)")
    track.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    track.add_argument("--precision", default="auto", help="auto (default), fp32, fp16, bf16")
    track.add_argument("--start-frame", type=int, default=None,
                       help="re-track from the keypoints on this frame (default: resume where results are stale)")
    track.add_argument("--end-frame", type=int, default=None, help="last frame to track (default: the last)")
    track.add_argument("--out", default=None, help="result folder (default: <video dir>/<video stem>/)")
    track.add_argument("--config", default=None, help="tracker settings JSON (see TrackerConfig)")
    track.add_argument("--preset", default=None, help="named settings: rodent_30fps, low_fps_large_motion, "
                       "fast_small_animals")
    track.add_argument("--batch-size", type=int, default=None, help="frames per backbone batch")
    track.add_argument("--quiet", action="store_true", help="no progress bar")
    track.set_defaults(func=_cmd_track)

    sample = sub.add_parser("sample", help="write a generated sample video with one labelled frame",
                            description="Write a short generated video of walking animals and a manual "
                            "seed annotation on frame 0, to try the tracker without data of your own.")
    sample.add_argument("folder", help="folder to write sample_mouse.mp4 (and its result folder) into")
    sample.add_argument("--frames", type=int, default=40, help="number of frames (default 40)")
    sample.add_argument("--animals", type=int, default=1, help="number of animals (default 1)")
    sample.set_defaults(func=_cmd_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors itself (code 2), --help is 0
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("napari-dinotrack: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_input_error(exc):
            print(f"napari-dinotrack: error: {exc}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"napari-dinotrack: internal error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
