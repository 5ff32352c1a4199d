"""``napari-dinotrack sample``: a generated video with a labelled first frame, to try the tracker."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sample",
        help="write a generated sample video with one labelled frame",
        description="Write a short generated video of walking animals and a manual "
        "seed annotation on frame 0, to try the tracker without data of your own.",
    )
    parser.add_argument("folder", help="folder to write sample_mouse.mp4 (and its result folder) into")
    parser.add_argument("--frames", type=int, default=40, help="number of frames (default 40)")
    parser.add_argument("--animals", type=int, default=1, help="number of animals (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..synthetic import write_sample

    if args.frames < 2:
        raise InputError(f"--frames must be at least 2 (a labelled frame and one to track), got {args.frames}")
    if args.animals < 1:
        raise InputError(f"--animals must be at least 1, got {args.animals}")
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; give the folder to write the sample into (it is created if needed)")
    video = write_sample(args.folder, n_frames=args.frames, n_instances=args.animals)
    print(
        f"Wrote {video} and its labelled frame 0; track it with:\n"
        f"  napari-dinotrack track {video} --model pixel:   (no weights needed)"
    )
    return 0
