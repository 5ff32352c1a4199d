"""``napari-dinotrack track``: track the labelled keypoints of one video."""

from __future__ import annotations

import argparse
import os
import sys

from ..runsettings import DIRECTIONS, PRECISIONS, RunSettings
from ..tracking.config import PRESETS
from .progress import FrameProgress


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "track",
        help="track the labelled keypoints of a video",
        description="Track every keypoint labelled on the video's manual frames (LabelMe JSON in the "
        "result folder) to the end of the video, writing per-frame LabelMe JSON and a CSV as it goes. "
        "Run it again to resume after a stop, or after correcting a frame to re-track from there.",
    )
    parser.add_argument("video", help="the video file (mp4, avi, mov, mkv)")
    parser.add_argument(
        "--start-frame",
        type=int,
        default=None,
        help="re-track from the keypoints on this frame (default: resume where results are stale)",
    )
    parser.add_argument("--end-frame", type=int, default=None, help="last frame to track (default: the last)")
    parser.add_argument("--out", default=None, help="result folder (default: <video dir>/<video stem>/)")
    add_run_options(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for the backbone (default: all cores but the one the tracking loop uses)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the backbone through torch.compile (worth it on a GPU; slow to start)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="FILE.json",
        help="record where the time goes, frame by frame, into this JSON file and print a summary",
    )
    parser.set_defaults(func=run)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The backbone and tracker options shared by the commands that track (defaults from RunSettings)."""
    defaults = RunSettings()
    parser.add_argument(
        "--model",
        default=defaults.model,
        help="backbone: catalog name, Hugging Face id or local save_pretrained folder "
        "(default %(default)s; see `napari-dinotrack models`)",
    )
    parser.add_argument(
        "--short-side", type=int, default=defaults.short_side, help="working resolution in pixels (default %(default)s)"
    )
    parser.add_argument("--device", default=defaults.device, help="auto (default), cpu, cuda, cuda:N, mps")
    parser.add_argument(
        "--precision", default=defaults.precision, choices=PRECISIONS, help="backbone precision (default %(default)s)"
    )
    parser.add_argument("--config", default=None, help="tracker settings JSON (see `napari-dinotrack settings`)")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="named tracker settings")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="overrides",
        help="change one tracker setting, e.g. --set min_similarity=0.3 (repeatable)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="frames per backbone batch")
    parser.add_argument(
        "--direction",
        default=defaults.direction,
        choices=DIRECTIONS,
        help="both (default): track between manual frames from each end and merge, and backward "
        "before the first one; forward: forward from each manual frame only",
    )


def tracker_config(args: argparse.Namespace):  # -> TrackerConfig
    """The tracker settings a command asked for: --config or --preset, then --set and --batch-size."""
    from ..errors import InputError
    from ..schema import parse_value
    from ..tracking.config import TrackerConfig

    if args.config and args.preset:
        raise InputError("use either --config or --preset, not both")
    if args.config:
        config = TrackerConfig.load(args.config)
    elif args.preset:
        config = TrackerConfig.preset(args.preset)
    else:
        config = TrackerConfig()
    changes = {}
    for item in args.overrides:
        name, sep, text = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: write it as NAME=VALUE, e.g. --set min_similarity=0.3")
        changes[name.strip()] = parse_value(text.strip())
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    return config.replace(**changes) if changes else config


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The backbone, working resolution, device, precision and direction a command asked for."""
    return RunSettings(
        model=args.model,
        short_side=args.short_side,
        device=args.device,
        precision=args.precision,
        direction=args.direction,
    )


def run(args: argparse.Namespace) -> int:
    config = tracker_config(args)
    settings = run_settings(args)
    from ..pipeline import DinoKeypointVideoProcessor

    if args.quiet:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    progress = FrameProgress(args.quiet)
    processor = DinoKeypointVideoProcessor(
        args.video,
        result_folder=args.out,
        model_name=settings.model,
        short_side=settings.short_side,
        device=settings.device,
        runtime_config=config,
        progress_callback=progress,
        precision=settings.precision,
        threads=args.threads,
        compile_backbone=args.compile,
        direction=settings.direction,
    )
    plan = processor.plan(args.start_frame, args.end_frame)
    if plan is None:
        processor.sync_results()  # the table still catches up with the JSONs
        print(
            f"All frames of {processor.video_path.name} are already tracked (results in "
            f"{processor.layout.folder}); use --start-frame N to track again from frame N."
        )
        return 0
    backbone = processor.backbone  # load before announcing: a missing model is reported first
    if not args.quiet:
        print(
            f"Tracking {processor.video_path.name} {plan.describe()} with {backbone.name} -> {processor.layout.folder}",
            file=sys.stderr,
        )
    try:
        summary = processor.process_video(args.start_frame, args.end_frame, profile=args.profile)
    finally:
        progress.close()
    if summary.profile is not None and summary.profile.n_frames:
        print(summary.profile.table(), file=sys.stderr)
        print(f"Profile written to {args.profile}", file=sys.stderr)
    print(
        f"Tracked {summary.frames_tracked} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s); "
        f"results in {processor.layout.folder}"
    )
    return 0
