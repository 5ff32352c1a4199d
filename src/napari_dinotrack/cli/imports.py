"""``napari-dinotrack import``: DeepLabCut, SLEAP or COCO labels as manual seed frames of a video."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import",
        help="write DeepLabCut, SLEAP or COCO labels as manual seed frames of a video",
        description="Read labels made in another tool (DeepLabCut CollectedData .h5/.csv or predictions, SLEAP .slp "
        "or analysis .h5, COCO keypoint .json), check them against the video (frame count, frame size, keypoint "
        "names) and write them as manual LabelMe frames into its result folder, ready for `napari-dinotrack track`. "
        "Existing manual frames are never replaced without --overwrite. Needs the [exchange] extra.",
    )
    parser.add_argument("labels", help="the label file")
    parser.add_argument("video", help="the video the labels were made on")
    parser.add_argument("--out", default=None, help="result folder (default: <video dir>/<video stem>/)")
    parser.add_argument(
        "--frames",
        default=None,
        metavar="LIST",
        help="import only these labelled frames, e.g. 0,120,240 (default: all)",
    )
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="call the file's keypoint OLD by the video's name NEW (repeatable), e.g. snout=nose",
    )
    parser.add_argument(
        "--new-keypoints", action="store_true", help="accept keypoint names the video's labelled frames do not have yet"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace manual frames that already exist")
    parser.set_defaults(func=run)


def _frames(text: str | None) -> list[int] | None:
    from ..errors import InputError

    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(f"--frames {text!r}: give frame numbers separated by commas, e.g. 0,120,240") from None


def _renames(items: list[str]) -> dict[str, str]:
    from ..errors import InputError

    out = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--rename {item!r}: write it as OLD=NEW, e.g. --rename snout=nose")
        out[old.strip()] = new.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from ..exchange.seeds import import_seeds

    report = import_seeds(
        args.labels,
        args.video,
        result_folder=args.out,
        overwrite=args.overwrite,
        frames=_frames(args.frames),
        rename=_renames(args.rename),
        new_keypoints=args.new_keypoints,
    )
    shown = ", ".join(map(str, report.frames[:10])) + (" …" if len(report.frames) > 10 else "")
    print(
        f"Imported {len(report.frames)} {report.labels.kind} frame(s) ({shown}) with "
        f"{', '.join(report.keypoints)} of {', '.join(report.animals)} as manual seeds into {report.layout.folder}"
    )
    if report.skeleton is not None:
        print(f"Kept the file's skeleton in {report.skeleton}")
    print(f"Track from them with: napari-dinotrack track {args.video}")
    return 0
