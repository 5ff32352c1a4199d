"""``napari-dinotrack export``: results in DeepLabCut, SLEAP, NWB or netCDF files (the ``[exchange]`` extra)."""

from __future__ import annotations

import argparse

from ..exchange.settings import FORMATS, INDIVIDUALS, CleanupSettings
from ..schema import describe


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="write the results as DeepLabCut, SLEAP, NWB or netCDF files",
        description="Export the tracked keypoints of a result folder through movement: every frame of the video, "
        "hidden points as NaN, the tracker's score as confidence. The result folder is never changed; clean-up "
        "options filter the exported positions only. Needs the [exchange] extra.",
    )
    parser.add_argument("results", help="result folder (<video dir>/<video stem>/) or the video itself")
    parser.add_argument(
        "--to",
        required=True,
        choices=FORMATS,
        help="dlc: DeepLabCut .h5/.csv; sleap: analysis .h5 or .slp; nwb: ndx-pose .nwb; netcdf: movement dataset .nc",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output file; its suffix picks .h5 or .csv (dlc), .h5 or .slp "
        "(sleap) (default: in the result folder, e.g. <stem>_dlc.h5, <stem>.analysis.h5)",
    )
    parser.add_argument(
        "--individuals",
        default=INDIVIDUALS[0],
        choices=INDIVIDUALS,
        help="one file for all animals (default) or one per animal (NWB is always one per animal)",
    )
    parser.add_argument("--video", default=None, help="the video, when it does not lie next to the result folder")
    parser.add_argument(
        "--skeleton",
        default=None,
        metavar="FILE",
        help="edges between keypoints (JSON or 'nose-leftear' lines); stored in the result folder",
    )
    add_cleanup_options(parser)
    parser.set_defaults(func=run)


def add_cleanup_options(parser: argparse.ArgumentParser) -> None:
    """One option per clean-up setting (``--min-confidence``, ``--max-gap``, …), defaults from CleanupSettings."""
    group = parser.add_argument_group("clean-up (movement filters; all off by default)")
    for info in describe(CleanupSettings):
        group.add_argument(
            f"--{info.name.replace('_', '-')}",
            type=info.kind,
            default=info.default,
            dest=info.name,
            help=f"{info.description} (default {info.default})",
        )


def cleanup_settings(args: argparse.Namespace) -> CleanupSettings:
    """The clean-up settings given on the command line."""
    return CleanupSettings(**{info.name: getattr(args, info.name) for info in describe(CleanupSettings)})


def run(args: argparse.Namespace) -> int:
    from ..exchange.export import export_results
    from ..exchange.skeleton import read_skeleton_file

    skeleton = read_skeleton_file(args.skeleton) if args.skeleton else None
    files = export_results(
        args.results,
        args.to,
        args.out,
        individuals=args.individuals,
        cleanup=cleanup_settings(args),
        skeleton=skeleton,
        video=args.video,
    )
    for path in files:
        print(f"Wrote {path}")
    return 0
