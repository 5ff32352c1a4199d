"""``napari-dinotrack eval``: score a result folder against a labels CSV."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..evaluation import EvalReport


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="score tracked keypoints against your own labels",
        description="Compare the predictions in a result folder with human labels (a CSV with columns "
        "frame,instance,keypoint,x,y; empty x and y = labelled, not visible) and print PCK at 5 px, 10 px and "
        "0.05 x the animal's box diagonal, median and mean error, identity and left/right swaps, hidden- and "
        "visible-point recall and time to first failure, per keypoint and pooled. Manual frames (your own "
        "seeds and corrections) are not scored. Exit codes: 0 scored, 2 bad input.",
    )
    parser.add_argument(
        "result_dir", help="the result folder the tracker wrote (<video dir>/<video stem>/) or the video"
    )
    parser.add_argument("labels", help="labels CSV: frame,instance,keypoint,x,y (extra columns are ignored)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="also write the error over time per keypoint as a PNG (needs the [plot] extra)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..evaluation import evaluate, plot_errors, read_labels_csv, read_result_folder
    from ..evaluation.plot import require_matplotlib

    if args.plot:
        require_matplotlib()  # before any work: a missing extra is reported first
    pred, manual = read_result_folder(args.result_dir)  # first: it recognises swapped arguments
    truth = read_labels_csv(args.labels)
    try:
        report = evaluate(pred, truth, skip_frames=manual)
    except InputError as exc:
        raise InputError(f"{args.labels} vs {args.result_dir}: {exc}") from None
    if not len(report.frames):
        raise InputError(
            f"{args.labels} vs {args.result_dir}: no labelled frame has a prediction to score "
            f"(labelled frames: {_frames(truth.frames)}; predicted: {_frames(pred.frames)}; manual, "
            f"not scored: {_frames(sorted(manual))}). Track the labelled frames first."
        )

    print(
        f"{args.result_dir} vs {args.labels}: {len(report.frames)} frames scored "
        f"({report.frames[0]}..{report.frames[-1]}), {len(report.keys)} tracks"
    )
    for note in _notes(report):
        print(f"  note: {note}")
    print()
    print(report.table())
    if args.json:
        data = {**report.to_dict(), "labels": str(Path(args.labels)), "result_folder": str(Path(args.result_dir))}
        _write(args.json, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
        print(f"Wrote {args.json}")
    if args.plot:
        target = _check_output(args.plot)
        try:
            plot_errors(report, target)
        except OSError as exc:
            raise InputError(f"{target}: cannot be written ({exc.strerror or exc}).") from exc
        print(f"Wrote {args.plot}")
    return 0


def _notes(report: EvalReport) -> list[str]:
    notes = []
    if report.frames_skipped:
        notes.append(
            f"{len(report.frames_skipped)} labelled manual frame(s) not scored ({_frames(report.frames_skipped)})"
        )
    if report.frames_unpredicted:
        notes.append(
            f"{len(report.frames_unpredicted)} labelled frame(s) have no prediction and are not scored "
            f"({_frames(report.frames_unpredicted)})"
        )
    for side, keys in (("labels", report.keys_only_in_labels), ("predictions", report.keys_only_in_predictions)):
        if keys:
            names = ", ".join(f"{i}/{k}" for i, k in keys[:6]) + (", ..." if len(keys) > 6 else "")
            notes.append(f"{len(keys)} track(s) only in the {side}, not scored: {names}")
    return notes


def _frames(frames: Iterable[int]) -> str:
    frames = [int(f) for f in frames]
    if not frames:
        return "none"
    return str(frames[0]) if len(frames) == 1 else f"{frames[0]}..{frames[-1]}"


def _check_output(path: str) -> Path:
    from ..errors import InputError

    target = Path(path).expanduser()
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name for the output.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{target.parent}: cannot create the output folder ({exc.strerror or exc}).") from exc
    return target


def _write(path: str, data: bytes) -> None:
    from ..errors import InputError
    from ..io.atomic import atomic_write_bytes

    target = _check_output(path)
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise InputError(f"{target}: cannot be written ({exc.strerror or exc}).") from exc
