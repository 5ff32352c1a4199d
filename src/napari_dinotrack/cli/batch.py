"""``napari-dinotrack batch``: track many videos at once, on this machine or a Dask cluster."""

from __future__ import annotations

import argparse

from .track import add_run_options


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "batch",
        help="track many videos at once (this machine or a Dask cluster)",
        description="Track every video like `track` does, one Dask task per video: videos without a labelled "
        "frame are reported and skipped, finished videos are left alone, the rest resume where their results "
        "end, and one failing video never stops the others. Without --scheduler a local Dask cluster is started "
        "(one worker per GPU). Exit codes: 0 every video tracked or up to date, 3 some failed, were stopped or had "
        "no labelled frame, 2 bad arguments.",
    )
    parser.add_argument(
        "videos", nargs="*", metavar="VIDEO", help="video files, or folders standing for the videos in them"
    )
    parser.add_argument(
        "--list",
        dest="list_file",
        default=None,
        metavar="FILE",
        help="a text file with one video (or folder) per line; # starts a comment line",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a running Dask scheduler (tcp://HOST:8786) instead of a local cluster",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="local cluster: worker processes (default: one per GPU, else 2)"
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=None,
        help="local cluster: videos a worker tracks at once (default: its GPU count, else 1)",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=int,
        default=None,
        metavar="K",
        help="local cluster: GPUs of each worker, one video per GPU at a time (default 1 when "
        "CUDA is available, else 0); more than the machine has shares them",
    )
    parser.add_argument("--summary", default=None, metavar="FILE.csv", help="write the summary table as CSV")
    add_run_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch import collect_videos, track_many
    from .track import run_settings, tracker_config

    videos = collect_videos(args.videos, args.list_file)
    summary = track_many(
        videos,
        run_settings(args),
        tracker_config(args),
        scheduler=args.scheduler,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        summary_csv=args.summary,
        quiet=args.quiet,
    )
    print(summary.table())
    print(summary.counts() + (f"; summary written to {args.summary}" if args.summary else ""))
    return summary.exit_code
