"""``napari-dinotrack render``: an overlay video of the tracked keypoints, skeleton and trails."""

from __future__ import annotations

import argparse

from ..exchange.settings import RenderSettings
from ..schema import describe


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "render",
        help="draw the tracked keypoints onto the video (mp4)",
        description="Write a copy of the video with the results drawn on it: a colour per keypoint (a ring when "
        "hidden), the skeleton stored in the result folder (or --skeleton) and short trails.",
    )
    parser.add_argument("results", help="result folder (<video dir>/<video stem>/) or the video itself")
    parser.add_argument("--out", default=None, help="the .mp4 to write (default: <result folder>/<stem>_overlay.mp4)")
    parser.add_argument("--video", default=None, help="the video, when it does not lie next to the result folder")
    parser.add_argument(
        "--skeleton",
        default=None,
        metavar="FILE",
        help="edges between keypoints (JSON or 'nose-leftear' lines) instead of the stored skeleton",
    )
    for info in describe(RenderSettings):
        parser.add_argument(
            f"--{info.name.replace('_', '-')}",
            type=info.kind,
            default=info.default,
            dest=info.name,
            help=f"{info.description} (default {info.default})",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..exchange.render import render_video
    from ..exchange.skeleton import read_skeleton_file
    from .progress import FrameProgress

    settings = RenderSettings(**{info.name: getattr(args, info.name) for info in describe(RenderSettings)})
    skeleton = read_skeleton_file(args.skeleton) if args.skeleton else None
    progress = FrameProgress(args.quiet, desc="render")
    try:
        path = render_video(
            args.results, args.out, settings=settings, skeleton=skeleton, video=args.video, progress=progress
        )
    finally:
        progress.close()
    print(f"Wrote {path}")
    return 0
