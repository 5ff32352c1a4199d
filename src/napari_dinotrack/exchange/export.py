"""Results in the formats of DeepLabCut, SLEAP, NWB and movement, written by movement and sleap-io.

=========  ===============  ==================================================================
``to``     suffixes         written by
=========  ===============  ==================================================================
dlc        ``.h5``, ``.csv``  movement ``save_poses.to_dlc_file`` (multi-animal layout:
                            scorer/individuals/bodyparts/coords with ``likelihood``)
sleap      ``.h5``, ``.slp``  sleap-io ``save_analysis_h5`` / ``save_slp`` (with the skeleton)
nwb        ``.nwb``           movement ``save_poses.to_nwb_file`` (ndx-pose, one file per animal)
netcdf     ``.nc``            the movement dataset itself (``xarray.Dataset.to_netcdf``)
=========  ===============  ==================================================================

Every file spans every frame of the video: a table's row (or a series' time stamp) is the frame,
hidden points are NaN and the tracker's score is the confidence. ``individuals="split"`` writes
one file per animal (``<name>_<animal><suffix>``, movement's naming); NWB always does.
Files appear complete or not at all: they are written in a scratch folder next to the output
and moved into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .cleanup import CleanupSettings, clean
from .dataset import dataset_frames, locate_results, result_dataset
from .extra import require
from .settings import FORMATS, INDIVIDUALS, SUFFIXES
from .skeleton import Edge, check_edges, read_skeleton, skeleton_file, write_skeleton

if TYPE_CHECKING:
    import xarray as xr
    from sleap_io import Labels

    from ..io.paths import ResultLayout

__all__ = [
    "FORMATS",
    "INDIVIDUALS",
    "SUFFIXES",
    "default_output",
    "export_results",
    "format_of",
    "sleap_labels",
    "write_dataset",
]

#: default file names per format (in the result folder), before the suffix
_DEFAULT_NAMES = {"dlc": "{stem}_dlc", "sleap": "{stem}", "nwb": "{stem}", "netcdf": "{stem}_poses"}
_PURPOSE = {
    "dlc": "Exporting to DeepLabCut",
    "sleap": "Exporting to SLEAP",
    "nwb": "Exporting to NWB",
    "netcdf": "Exporting to netCDF",
}


def default_output(layout: ResultLayout, to: str, suffix: str | None = None) -> Path:
    """Where an export goes unless told otherwise: the result folder, e.g. ``<stem>_dlc.h5``.

    ``suffix`` picks one of the format's :data:`SUFFIXES` (default the first); a SLEAP ``.h5`` is
    named ``<stem>.analysis.h5``, as SLEAP names its analysis files.
    """
    suffix = suffix or SUFFIXES[_check_format(to)][0]
    if suffix not in SUFFIXES[to]:
        raise InputError(f"a {to} export is {' or '.join(SUFFIXES[to])}, not {suffix}")
    if to == "sleap" and suffix == ".h5":
        suffix = ".analysis.h5"
    return layout.folder / (_DEFAULT_NAMES[to].format(stem=layout.stem) + suffix)


def format_of(path: str | os.PathLike[str]) -> str:
    """The format a file name asks for: ``.nc`` netcdf, ``.nwb`` nwb, ``.slp`` sleap, ``.h5``/``.csv`` dlc."""
    suffix = Path(path).suffix.lower()
    for name in ("netcdf", "nwb", "dlc"):
        if suffix in SUFFIXES[name]:
            return name
    if suffix == ".slp":
        return "sleap"
    raise InputError(
        f"{path}: cannot tell the format from the suffix {suffix!r}; use .h5 or .csv (DeepLabCut), "
        ".slp (SLEAP), .nwb (NWB) or .nc (netCDF)"
    )


def _check_format(to: str) -> str:
    if to not in FORMATS:
        raise InputError(f"unknown export format {to!r}; choose one of {', '.join(FORMATS)}")
    return to


def export_results(
    path: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    *,
    individuals: str = "together",
    cleanup: CleanupSettings | None = None,
    skeleton: Sequence[Edge] | None = None,
    video: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Export the results of a result folder (or of a video's default folder) and return the files written.

    ``cleanup`` filters the positions first (the result folder is never changed). ``skeleton``
    replaces the folder's stored skeleton (and is stored there); by default the stored one is used.
    ``video`` locates the video when it does not lie next to the folder.
    """
    _check_format(to)
    source = locate_results(path, video)
    ds = result_dataset(source)
    keypoints = [str(k) for k in ds["keypoints"].values]
    if skeleton is not None:
        edges = check_edges(skeleton, keypoints, "--skeleton")
    else:
        edges = check_edges(read_skeleton(source.layout), keypoints, str(skeleton_file(source.layout)))
    if cleanup is not None:
        ds = clean(ds, cleanup)
    target = Path(out) if out is not None else default_output(source.layout, to)
    written = write_dataset(ds, to, target, individuals=individuals, edges=edges)
    if skeleton is not None:
        write_skeleton(source.layout, edges)
    return written


def write_dataset(
    ds: xr.Dataset, to: str, out: str | os.PathLike[str], *, individuals: str = "together", edges: Sequence[Edge] = ()
) -> list[Path]:
    """Write a poses dataset in format ``to`` to ``out`` (or per-animal files next to it); return the files."""
    out = Path(out).expanduser()
    _check_format(to)
    if out.suffix.lower() not in SUFFIXES[to]:
        raise InputError(f"{out}: a {to} export must end in {' or '.join(SUFFIXES[to])}")
    if individuals not in INDIVIDUALS:
        raise InputError(f"individuals must be one of {', '.join(INDIVIDUALS)}, got {individuals!r}")
    edges = check_edges(edges, [str(k) for k in ds["keypoints"].values], "skeleton")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: the output folder does not exist; create it or choose another --out")
    writer = _WRITERS[to]
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        writer(ds, staging / out.name, individuals == "split", list(edges))
        written = []
        for part in sorted(staging.iterdir()):
            target = out.parent / part.name
            os.replace(part, target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _split_name(path: Path, individual: str) -> Path:
    """movement's per-animal file name: ``x.h5`` -> ``x_<animal>.h5``."""
    return path.with_name(f"{path.with_suffix('').name}_{individual}{path.suffix}")


def _per_animal(ds: xr.Dataset, path: Path, split: bool, write: Callable[[xr.Dataset, Path], None]) -> None:
    if not split:
        write(ds, path)
        return
    for name in ds["individuals"].values:
        write(ds.sel(individuals=[name]), _split_name(path, str(name)))


def _write_dlc(ds: xr.Dataset, path: Path, split: bool, edges: list[Edge]) -> None:
    save_poses = require("movement.io.save_poses", _PURPOSE["dlc"])
    save_poses.to_dlc_file(ds, path, split_individuals=split)


def _write_netcdf(ds: xr.Dataset, path: Path, split: bool, edges: list[Edge]) -> None:
    require("netCDF4", _PURPOSE["netcdf"])
    ds = ds.copy()
    ds.attrs = {key: value for key, value in ds.attrs.items() if value is not None}
    if edges:
        ds.attrs["skeleton"] = json.dumps([list(edge) for edge in edges])
    _per_animal(ds, path, split, lambda part, target: part.to_netcdf(target))


def _write_nwb(ds: xr.Dataset, path: Path, split: bool, edges: list[Edge]) -> None:
    pynwb = require("pynwb", _PURPOSE["nwb"])
    nwb = require("movement.io.nwb", _PURPOSE["nwb"])
    save_poses = require("movement.io.save_poses", _PURPOSE["nwb"])
    keypoints = [str(k) for k in ds["keypoints"].values]
    skeleton_kwargs = {}
    if edges:
        skeleton_kwargs["edges"] = np.array([[keypoints.index(a), keypoints.index(b)] for a, b in edges], np.uint8)
    video = ds.attrs.get("video_path")
    config = nwb.NWBFileSaveConfig(
        nwbfile_kwargs={
            "session_description": f"keypoints of {Path(video).name if video else 'a video'} tracked "
            "with napari-dinotrack",
            "session_start_time": _recording_time(video),
        },
        skeleton_kwargs=skeleton_kwargs,
    )
    files = save_poses.to_nwb_file(ds, config)
    individuals = [str(name) for name in ds["individuals"].values]
    if len(individuals) == 1:
        targets = [path]
        files = [files]
    else:
        targets = [_split_name(path, name) for name in individuals]
    for nwbfile, target in zip(files, targets, strict=True):
        with pynwb.NWBHDF5IO(str(target), "w") as io:
            io.write(nwbfile)


def _recording_time(video: str | None) -> datetime:
    """NWB needs a session start: the video file's modification time, the best guess at when it was recorded."""
    if video and Path(video).exists():
        return datetime.fromtimestamp(Path(video).stat().st_mtime, UTC)
    return datetime.now(UTC)


def _write_sleap(ds: xr.Dataset, path: Path, split: bool, edges: list[Edge]) -> None:
    sio = require("sleap_io", _PURPOSE["sleap"])

    def write(part: xr.Dataset, target: Path) -> None:
        labels = sleap_labels(part, edges)
        if target.suffix.lower() == ".slp":
            sio.save_slp(labels, str(target))
        else:
            sio.save_analysis_h5(labels, str(target))

    _per_animal(ds, path, split, write)


def sleap_labels(ds: xr.Dataset, edges: Sequence[Edge] = ()) -> Labels:
    """A poses dataset as sleap-io ``Labels``: one track per animal, predicted instances with point scores."""
    sio = require("sleap_io", _PURPOSE["sleap"])
    position = ds["position"].transpose("time", "individuals", "keypoints", "space").values
    confidence = ds["confidence"].transpose("time", "individuals", "keypoints").values
    tracks_array = np.concatenate([position, confidence[..., None]], axis=-1)
    keypoints = [str(k) for k in ds["keypoints"].values]
    video_path = ds.attrs.get("video_path") or ""
    metadata = {}
    if ds.attrs.get("frame_height") and ds.attrs.get("frame_width"):
        metadata["shape"] = (len(tracks_array), int(ds.attrs["frame_height"]), int(ds.attrs["frame_width"]), 3)
    video = sio.Video(filename=str(video_path), open_backend=False, backend_metadata=metadata)
    return sio.Labels.from_numpy(
        tracks_array,
        videos=[video],
        skeletons=[sio.Skeleton(keypoints, edges=[tuple(e) for e in edges])],
        tracks=[sio.Track(name=str(name)) for name in ds["individuals"].values],
        first_frame=int(dataset_frames(ds)[0]),
        return_confidence=True,
    )


_WRITERS: dict[str, Callable[[xr.Dataset, Path, bool, list[Edge]], None]] = {
    "dlc": _write_dlc,
    "sleap": _write_sleap,
    "nwb": _write_nwb,
    "netcdf": _write_netcdf,
}
