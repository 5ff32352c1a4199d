"""Where result files live: the one place that decides folder and file names.

Layout (Annolid-compatible), for a video ``/data/mouse.mp4``::

    /data/mouse/                            folder (or the given result_folder)
        mouse_000000042.json                one LabelMe file per labelled/tracked frame
        mouse_000000042.png                 present only for Annolid "manual" frames
        mouse_tracks.csv                    tidy keypoint table
        .mouse_tracks.index.json            what the table holds, and which video the folder belongs to
        .napari-dinotrack.lock              present while (or after) a run writes the folder
        mouse_masks/                        per-frame masks
        mouse_tracker_config.json           settings of the last run

The prefix in file names (:attr:`ResultLayout.stem`) is the video's stem. The one exception:
when an explicit ``result_folder`` already holds frame files ``<prefix>_<9 digits>.json`` that
all share a single other prefix (e.g. an Annolid folder that was renamed or made for a
differently named copy of the video), that prefix is adopted so the existing labels are found
and new files sit next to them with the same naming. The choice is made once, when the layout
is created.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import OutputError

__all__ = ["FRAME_DIGITS", "LOCK_NAME", "ResultLayout"]

FRAME_DIGITS = 9
LOCK_NAME = ".napari-dinotrack.lock"
_ANY_FRAME_JSON = re.compile(r"^(?P<prefix>.+)_(?P<frame>\d{9})\.json$")


class ResultLayout:
    """File locations of one video's results.

    Parameters
    ----------
    video_path
        The video file (it need not exist; only its name and folder are used).
    result_folder
        Where results go. Default: ``<video folder>/<video stem>/``.
    """

    def __init__(
        self,
        video_path: str | os.PathLike[str],
        result_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        self.video_path: Path = Path(video_path).expanduser()
        #: The video's own stem, whatever prefix the files use.
        self.video_stem: str = self.video_path.stem
        if result_folder is None:
            self.folder: Path = self.video_path.parent / self.video_stem
            self.stem: str = self.video_stem
        else:
            self.folder = Path(result_folder).expanduser()
            self.stem = _adopted_prefix(self.folder) or self.video_stem
        self._frame_name = re.compile(rf"^{re.escape(self.stem)}_(\d{{{FRAME_DIGITS}}})\.(?:json|png)$")

    def __repr__(self) -> str:
        return f"ResultLayout(video_path={str(self.video_path)!r}, folder={str(self.folder)!r})"

    # -- per-frame files -------------------------------------------------------------------
    def frame_json(self, frame: int) -> Path:
        """LabelMe file of ``frame``: ``<folder>/<stem>_<frame:09d>.json``."""
        return self.folder / f"{self.stem}_{_check_frame(frame):0{FRAME_DIGITS}d}.json"

    def frame_png(self, frame: int) -> Path:
        """Image next to the frame's JSON; its presence marks an Annolid manual frame."""
        return self.folder / f"{self.stem}_{_check_frame(frame):0{FRAME_DIGITS}d}.png"

    def frame_of(self, path: str | os.PathLike[str]) -> int | None:
        """Frame number encoded in a frame file name of this layout (.json or .png), else None."""
        match = self._frame_name.match(Path(path).name)
        return int(match.group(1)) if match else None

    def frame_files(self) -> dict[int, Path]:
        """Existing frame JSON files, keyed and sorted by frame number."""
        if not self.folder.is_dir():
            return {}
        found: dict[int, Path] = {}
        for path in self.folder.iterdir():
            if path.suffix != ".json":
                continue
            frame = self.frame_of(path)
            if frame is not None and path.is_file():
                found[frame] = path
        return dict(sorted(found.items()))

    # -- whole-video files -----------------------------------------------------------------
    @property
    def tracks_csv(self) -> Path:
        """Tidy keypoint table: ``<folder>/<stem>_tracks.csv``."""
        return self.folder / f"{self.stem}_tracks.csv"

    @property
    def tracks_index(self) -> Path:
        """Which JSON versions the table holds, and the video: ``<folder>/.<stem>_tracks.index.json``."""
        return self.folder / f".{self.stem}_tracks.index.json"

    @property
    def lock_file(self) -> Path:
        """Lock of the run writing this folder: ``<folder>/.napari-dinotrack.lock``."""
        return self.folder / LOCK_NAME

    @property
    def masks_dir(self) -> Path:
        """Folder for per-frame masks: ``<folder>/<stem>_masks/``."""
        return self.folder / f"{self.stem}_masks"

    @property
    def config_json(self) -> Path:
        """Tracker settings of the last run: ``<folder>/<stem>_tracker_config.json``."""
        return self.folder / f"{self.stem}_tracker_config.json"

    def writes(self, name: str) -> bool:
        """Whether ``name`` is a file this layout writes in :attr:`folder` (tells our files from others')."""
        own = {self.tracks_csv.name, self.tracks_index.name, self.config_json.name}
        return name in own or self.frame_of(name) is not None

    def ensure_folder(self) -> Path:
        """Create the result folder (and parents) if needed; return it.

        Raises :class:`~napari_dinotrack.errors.OutputError` naming the folder when it cannot be made.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError(
                self.folder, "is a file, not a folder", "Move that file away or choose another result folder (--out)."
            ) from None
        except OSError as exc:
            raise OutputError(
                self.folder,
                f"cannot be created ({exc.strerror or exc})",
                "Choose a result folder you may write to (--out).",
                exc.errno,
            ) from None
        return self.folder


def _check_frame(frame: int) -> int:
    value = int(frame)
    if value != frame or value < 0:
        raise ValueError(f"frame must be a non-negative integer, got {frame!r}")
    return value


def _adopted_prefix(folder: Path) -> str | None:
    """The single prefix of existing ``<prefix>_<9 digits>.json`` files in ``folder``, if any."""
    if not folder.is_dir():
        return None
    prefixes = set()
    for path in folder.iterdir():
        match = _ANY_FRAME_JSON.match(path.name)
        if match:
            prefixes.add(match.group("prefix"))
    return prefixes.pop() if len(prefixes) == 1 else None
