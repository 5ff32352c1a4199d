"""The dock's "Export · import · clean-up · render" panel: layout only (behaviour: ``exchange_tools.py``).

The clean-up editors are generated from :class:`~napari_dinotrack.exchange.settings.CleanupSettings`
(label, range, default and tooltip per field), so the dock, the command line and the Python API
share one definition.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from magicgui.widgets.bases import ValueWidget

from ..exchange.settings import INDIVIDUALS, CleanupSettings, RenderSettings
from ..schema import SettingInfo, describe

__all__ = ["EXPORT_CHOICES", "ExchangePanel"]

#: (shown text, "format:suffix") of the export formats
EXPORT_CHOICES: tuple[tuple[str, str], ...] = (
    ("DeepLabCut .h5", "dlc:.h5"),
    ("DeepLabCut .csv", "dlc:.csv"),
    ("SLEAP analysis .h5", "sleap:.h5"),
    ("SLEAP .slp", "sleap:.slp"),
    ("NWB (ndx-pose)", "nwb:.nwb"),
    ("movement netCDF", "netcdf:.nc"),
)
_LABEL_FILTER = "Label files (*.h5 *.csv *.slp *.json)"


def _editor(info: SettingInfo) -> ValueWidget:
    tip = f"{info.description} Default: {info.default}."
    label = info.name.replace("_", " ")
    if info.kind is int:
        return SpinBox(label=label, value=info.default, min=int(info.lo or 0), max=int(info.hi or 10**6), tooltip=tip)
    return FloatSpinBox(
        label=label, value=info.default, min=float(info.lo or 0.0), max=float(info.hi or 1e6), step=0.05, tooltip=tip
    )


def _typed_path(edit: FileEdit) -> Path | None:
    # the text, not the value: an empty FileEdit's value is the current folder
    text = str(edit.line_edit.value).strip()
    return Path(text).expanduser() if text else None


def _header(text: str) -> Label:
    return Label(value=f"<b>{text}</b>")


class ExchangePanel(Container):
    """Export to other tools, movement clean-up shown as a layer, skeleton, label import, overlay video."""

    # the "Render overlay video" button shadows Container.render (a screenshot), which this panel never uses
    render: PushButton  # type: ignore[assignment]

    def __init__(self) -> None:
        self.format = ComboBox(
            label="format",
            choices=list(EXPORT_CHOICES),
            value=EXPORT_CHOICES[0][1],
            tooltip="File format for DeepLabCut, SLEAP, NWB or movement.",
        )
        self.individuals = ComboBox(
            label="animals",
            choices=list(INDIVIDUALS),
            value=INDIVIDUALS[0],
            tooltip="One file for all animals, or one per animal (NWB: always one per animal).",
        )
        self.out = FileEdit(
            label="save as",
            mode=FileDialogMode.OPTIONAL_FILE,
            tooltip="Output file; leave empty for the result folder (e.g. <video>_dlc.h5).",
        )
        self.apply_cleanup = CheckBox(
            text="apply the clean-up below",
            value=False,
            tooltip="Export the filtered positions instead of the raw ones.",
        )
        self.export = PushButton(text="Export", tooltip="Write the saved results in the chosen format.")

        self.cleanup_editors: dict[str, ValueWidget] = {info.name: _editor(info) for info in describe(CleanupSettings)}
        self.show_filtered = PushButton(
            text="Show filtered keypoints",
            tooltip="Add (or refresh) a separate 'filtered' layer beside the keypoints; nothing is saved.",
        )

        self.skeleton = LineEdit(
            label="skeleton",
            value="",
            tooltip="Edges between keypoints, e.g. 'nose-leftear, nose-rightear, nose-tail_base'. "
            "Stored in the result folder; drawn on the current frame and in renders.",
        )
        self.save_skeleton = PushButton(text="Save and draw skeleton")

        self.label_file = FileEdit(
            label="labels",
            mode=FileDialogMode.EXISTING_FILE,
            filter=_LABEL_FILTER,
            tooltip="DeepLabCut CollectedData .h5/.csv or predictions, SLEAP .slp or analysis .h5, "
            "COCO keypoint .json made on this video.",
        )
        self.replace = CheckBox(
            text="Replace manual frames",
            value=False,
            tooltip="Overwrite frames that already have manual labels (otherwise nothing is "
            "imported when one would be).",
        )
        self.new_keypoints = CheckBox(
            text="accept new keypoint names",
            value=False,
            tooltip="Allow names the video's labelled frames do not have yet.",
        )
        self.import_labels = PushButton(
            text="Import as seeds", tooltip="Write the file's labelled frames as manual seed frames of this video."
        )

        trail = next(info for info in describe(RenderSettings) if info.name == "trail")
        self.trail = _editor(trail)
        self.render = PushButton(
            text="Render overlay video",
            tooltip="Write <video>_overlay.mp4 in the result folder: keypoints, skeleton, trails.",
        )
        self.progress = ProgressBar(value=0, min=0, max=1, label="render")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.status.native.setStyleSheet("color: #bbbbbb;")
        super().__init__(
            widgets=[
                _header("Export"),
                self.format,
                self.individuals,
                self.out,
                self.apply_cleanup,
                self.export,
                _header("Clean-up (movement filters)"),
                *self.cleanup_editors.values(),
                self.show_filtered,
                _header("Skeleton"),
                self.skeleton,
                self.save_skeleton,
                _header("Labels from other tools"),
                self.label_file,
                self.replace,
                self.new_keypoints,
                self.import_labels,
                _header("Overlay video"),
                self.trail,
                self.render,
                self.progress,
                self.status,
            ],
            labels=True,
        )

    def cleanup_settings(self) -> CleanupSettings:
        """The clean-up settings shown (ConfigError when they do not fit together, e.g. an even window)."""
        return CleanupSettings(**{name: editor.value for name, editor in self.cleanup_editors.items()})

    def output_path(self) -> Path | None:
        """The export file typed or chosen; None when the field is empty (the result folder's default)."""
        return _typed_path(self.out)

    def labels_path(self) -> Path | None:
        """The label file chosen for import; None when the field is empty."""
        return _typed_path(self.label_file)

    def set_status(self, text: str) -> None:
        """Show a one-line message under the panel."""
        self.status.value = text
