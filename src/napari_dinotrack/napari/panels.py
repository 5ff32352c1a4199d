"""The dock's sub-panels as magicgui Containers.

Each panel is layout plus what only concerns itself (a preset fills the knobs, an edited knob shows
whether the values are valid); everything that reaches outside a panel is wired in ``widget.py``.

The tracker-settings panel is generated from :class:`~napari_dinotrack.tracking.config.TrackerConfig`'s
field descriptions (:func:`~napari_dinotrack.schema.describe`): one editor per field, tooltip = the
field's help text plus its valid range, limits = its bounds, choices = its literal values, grouped
by its ``group``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    Widget,
)
from magicgui.widgets.bases import ValueWidget

from ..runsettings import MAX_SHORT_SIDE, MIN_SHORT_SIDE, PRECISIONS, Direction, RunSettings
from ..schema import SettingInfo, describe
from ..tracking.config import PRESETS, TrackerConfig
from .backbones import LOCAL_FOLDER, model_choices
from .shortcuts import with_key

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from qtpy.QtWidgets import QWidget
    from superqt import QCollapsible

__all__ = [
    "GROUP_TITLES",
    "PROBLEM_SIGN",
    "BackbonePanel",
    "DisplayPanel",
    "LayersPanel",
    "SeedPanel",
    "StatusLabel",
    "TrackPanel",
    "TrackerConfigPanel",
    "compact",
    "config_field_label",
    "soft_wrap",
    "stack_collapsible",
    "status_label",
    "wrapped",
]

GROUP_TITLES: dict[str, str] = {
    "motion": "Motion prior & search window",
    "occlusion": "Occlusion",
    "appearance": "Appearance & refinement",
    "mask": "Masks",
    "runtime": "Runtime",
}
CUSTOM = "custom"


def compact(combo: ComboBox, chars: int = 12) -> ComboBox:
    """Let a combo box shrink below its longest entry (the dock stays narrow)."""
    from qtpy.QtWidgets import QComboBox

    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(chars)
    return combo


def wrapped(label: Label) -> Label:
    """Let a label wrap its words."""
    label.native.setWordWrap(True)
    return label


#: colour of a status line: information, and a problem the user has to act on
INFO_COLOUR = "#bbbbbb"
PROBLEM_COLOUR = "#ffb74d"
#: a status line showing a problem starts with this sign
PROBLEM_SIGN = "⚠"
_BREAK_AFTER = re.compile(r"([/\\_.,:;=&?-])")
_LONG_WORD = 24


def soft_wrap(text: str) -> str:
    """``text`` with invisible line-break chances inside long words (paths, URLs, ids), shown the same."""

    def breakable(match: re.Match[str]) -> str:
        word = _BREAK_AFTER.sub("\\1\u200b", match.group(0))
        # a long run without any of those characters gets a chance every _LONG_WORD characters
        return re.sub(rf"([^\u200b]{{{_LONG_WORD}}})(?=[^\u200b])", "\\1\u200b", word)

    return re.sub(rf"\S{{{_LONG_WORD},}}", breakable, text)


class StatusLabel(Label):
    """A status line that wraps anywhere, so a long message never widens the dock.

    Its ``value`` is the text as given; a text starting with :data:`PROBLEM_SIGN` is shown in a
    warning colour. The text can be selected and copied.
    """

    def __init__(self, value: str = "", **kwargs: Any) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QSizePolicy

        self._plain = ""
        super().__init__(value="", **kwargs)
        native = self.native
        native.setWordWrap(True)
        native.setTextFormat(Qt.TextFormat.PlainText)
        native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        native.setMinimumWidth(1)
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.value = value

    @property
    def value(self) -> str:
        """The text as given (without the invisible break chances)."""
        return self._plain

    @value.setter
    def value(self, text: Any) -> None:
        self._plain = "" if text is None else str(text)
        problem = self._plain.lstrip().startswith(PROBLEM_SIGN)
        self.native.setStyleSheet(f"color: {PROBLEM_COLOUR if problem else INFO_COLOUR};")
        Label.value.fset(self, soft_wrap(self._plain))  # type: ignore[attr-defined]


def status_label(value: str = "") -> StatusLabel:
    """A new :class:`StatusLabel`."""
    return StatusLabel(value=value)


def stack_collapsible(parent: QWidget, sections: Sequence[tuple[str, Container, bool]]) -> dict[str, QCollapsible]:
    """Stack ``(title, panel, expanded)`` sections as collapsible boxes in a scroll area filling ``parent``.

    Returns the boxes by title. The dock stays narrow: no horizontal scrolling, long panels scroll.
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget
    from superqt import QCollapsible

    inner = QWidget()
    inner_layout = QVBoxLayout(inner)
    inner_layout.setContentsMargins(4, 4, 4, 4)
    inner_layout.setSpacing(2)
    boxes: dict[str, QCollapsible] = {}
    for title, panel, expanded in sections:
        box = QCollapsible(title.replace("&", "&&"), inner)  # "&" would be a mnemonic
        box.setDuration(0)
        box.addWidget(panel.native)
        if expanded:
            box.expand(animate=False)
        inner_layout.addWidget(box)
        boxes[title] = box
    inner_layout.addStretch(1)
    scroll = QScrollArea(parent)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(inner)
    layout = QVBoxLayout(parent)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(scroll)
    return boxes


class LayersPanel(Container):
    """Pickers for the video Image, keypoints Points and masks Labels layers."""

    def __init__(self, image_choices: Callable, points_choices: Callable, labels_choices: Callable) -> None:
        self.image = ComboBox(
            label="video", choices=image_choices, nullable=True, tooltip="The video (Image layer) to track."
        )
        self.points = ComboBox(
            label="keypoints",
            choices=points_choices,
            nullable=True,
            tooltip="The Points layer with the keypoints (seed + tracked).",
        )
        self.masks = ComboBox(
            label="masks",
            choices=labels_choices,
            nullable=True,
            tooltip="Optional Labels layer with the instance masks; only layers of the video's size are offered.",
        )
        for combo in (self.image, self.points, self.masks):
            compact(combo)
        self.new_masks = PushButton(
            text="New masks layer", tooltip="Add an empty masks layer of the video's size to paint animals in."
        )
        self.mask_names = status_label()
        self.mask_names.tooltip = (
            "Which animal each label value of the masks layer stands for: paint an animal "
            "with its value (the keypoints' animals, in order)."
        )
        super().__init__(widgets=[self.image, self.points, self.masks, self.new_masks, self.mask_names], labels=True)


class BackbonePanel(Container):
    """Model, short side, device, precision and where the weights come from."""

    def __init__(self) -> None:
        self.model = ComboBox(
            label="model",
            choices=model_choices(),
            tooltip="Feature extractor. DINOv3 needs its (gated) weights; "
            "'pixel:' needs none; 'local folder…' loads a save_pretrained folder.",
        )
        self.folder = FileEdit(
            label="folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="Folder with config.json + model.safetensors.",
        )
        defaults = RunSettings()
        self.short_side = SpinBox(
            label="short side",
            value=defaults.short_side,
            min=MIN_SHORT_SIDE,
            max=MAX_SHORT_SIDE,
            step=16,
            tooltip="Frames are resized so their short side has this many pixels "
            "before feature extraction (more = finer, slower).",
        )
        self.device = ComboBox(
            label="device",
            choices=_device_choices(),
            tooltip="Where the model runs; 'auto' picks CUDA, then Apple MPS, then CPU.",
        )
        self.precision = ComboBox(
            label="precision",
            choices=list(PRECISIONS),
            value=defaults.precision,
            tooltip=RunSettings.model_fields["precision"].description,
        )
        for combo in (self.model, self.device, self.precision):
            compact(combo)
        self.source = status_label()
        self.check = PushButton(
            text="Load model now", tooltip="Load the model in the background to check that it is available."
        )
        super().__init__(
            widgets=[self.model, self.folder, self.short_side, self.device, self.precision, self.source, self.check],
            labels=True,
        )
        self.folder.visible = False

    @property
    def model_name(self) -> str:
        """The model to load: catalog key, ``pixel:`` or the chosen folder."""
        value = self.model.value
        if value == LOCAL_FOLDER:
            folder = self.folder.value
            return str(folder) if folder and str(folder) not in ("", ".") else ""
        return str(value)

    def set_model(self, name: str) -> None:
        """Select ``name`` (a catalog key / ``pixel:``) or, for a path, the local-folder entry."""
        values = [v for _, v in model_choices()]
        if name in values:
            self.model.value = name
        elif name:
            self.model.value = LOCAL_FOLDER
            self.folder.value = Path(name)


def _device_choices() -> list[str]:
    """Devices to offer; filtered by availability only if torch is already imported (fast start)."""
    import sys

    choices = ["auto", "cpu"]
    torch = sys.modules.get("torch")
    if torch is None:
        return [*choices, "cuda", "mps"]
    if torch.cuda.is_available():
        choices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        choices.append("mps")
    return choices


def config_field_label(name: str) -> str:
    """Human label of a TrackerConfig field: ``motion_soft_radius_px`` -> ``motion soft radius (px)``."""
    text = name.replace("_", " ")
    if text.endswith(" px"):
        text = text[:-3] + " (px)"
    return text


def _nice_step(lo: float, hi: float, default: float) -> float:
    span = (hi - lo) if math.isfinite(hi - lo) and hi > lo else max(abs(default), 1.0)
    step = 10 ** math.floor(math.log10(span / 100)) if span > 0 else 0.01
    if default:
        # fine enough to reach the default exactly (e.g. 0.85 with a 0.01 step)
        while step > 1e-4 and abs(round(default / step) * step - default) > 1e-9:
            step /= 10
    return step


class TrackerConfigPanel(Container):
    """Every TrackerConfig knob, generated from the field metadata, plus presets and reset."""

    def __init__(self) -> None:
        self.preset = ComboBox(
            label="preset",
            choices=[CUSTOM, *PRESETS],
            tooltip="Starting points for common situations; editing any knob makes it 'custom'.",
        )
        self.reset = PushButton(text="Reset to defaults")
        self.error = status_label()
        self.editors: dict[str, ValueWidget] = {}
        widgets: list[Widget] = [self.preset, self.reset]
        by_group: dict[str, list[SettingInfo]] = {}
        for info in describe(TrackerConfig):
            by_group.setdefault(info.group, []).append(info)
        for group in [*GROUP_TITLES, *[g for g in by_group if g not in GROUP_TITLES]]:
            if group not in by_group:
                continue
            header = Label(value=f"<b>{GROUP_TITLES.get(group, group.title())}</b>")
            widgets.append(header)
            for f in by_group[group]:
                editor = self._editor(f)
                self.editors[f.name] = editor
                widgets.append(editor)
        widgets.append(self.error)
        super().__init__(widgets=widgets, labels=True)
        self.preset.changed.connect(self._on_preset)
        self.reset.clicked.connect(self.reset_to_defaults)
        self.changed.connect(self._on_edited)

    @staticmethod
    def _editor(f: SettingInfo) -> ValueWidget:
        default, lo, hi = f.default, f.lo, f.hi
        rng = ""
        if lo is not None or hi is not None:
            rng = f" Range {lo if lo is not None else '-∞'} to {hi if hi is not None else '∞'}."
        tip = f"{f.description}{rng} Default: {default!r}. [{f.name}]"
        label = config_field_label(f.name)
        if f.choices:
            return compact(ComboBox(label=label, choices=list(f.choices), value=default, tooltip=tip), 6)
        if f.kind is bool:
            return CheckBox(label=label, value=default, tooltip=tip)
        if f.kind is int:
            return SpinBox(
                label=label,
                value=default,
                min=int(lo if lo is not None else -(2**31)),
                max=int(hi if hi is not None else 2**31 - 1),
                tooltip=tip,
            )
        lo_f = float(lo) if lo is not None else -1e9
        hi_f = float(hi) if hi is not None else 1e9
        step = _nice_step(lo_f, hi_f, float(default or 0.0))
        return FloatSpinBox(label=label, value=float(default), min=lo_f, max=hi_f, step=step, tooltip=tip)

    def values(self) -> dict[str, Any]:
        """The editors' current values by field name (not validated)."""
        return {name: w.value for name, w in self.editors.items()}

    def config(self) -> TrackerConfig:
        """A validated TrackerConfig from the editors; raises ValueError naming the bad field."""
        values = self.values()
        for f in describe(TrackerConfig):
            if f.kind is float and values.get(f.name) is not None:
                values[f.name] = float(values[f.name])
        return TrackerConfig.from_dict(values)

    def set_config(self, config: TrackerConfig) -> None:
        """Show ``config`` in the editors (emits one ``changed``)."""
        with self.changed.blocked():
            for name, editor in self.editors.items():
                value = getattr(config, name)
                with editor.changed.blocked():
                    editor.value = value
        self.changed.emit(self)

    def reset_to_defaults(self) -> None:
        """Every knob back to its default."""
        self.set_config(TrackerConfig())

    def _on_preset(self, name: str) -> None:
        if name and name != CUSTOM:
            self.set_config(TrackerConfig.preset(name))

    def _on_edited(self, *_: Any) -> None:
        """Say why the values are invalid, if they are, and show the preset they match."""
        try:
            self.config()
            self.error.value = ""
        except ValueError as exc:
            self.error.value = f"{PROBLEM_SIGN} {exc}"
        match = self.matching_preset()
        if self.preset.value != match:
            with self.preset.changed.blocked():
                self.preset.value = match

    def matching_preset(self) -> str:
        """The preset equal to the current values, else ``"custom"``."""
        try:
            cfg = self.config().to_dict()
        except ValueError:
            return CUSTOM
        for name in PRESETS:
            if TrackerConfig.preset(name).to_dict() == cfg:
                return name
        return CUSTOM


class SeedPanel(Container):
    """Keypoint names, instance name, add points, mark hidden/visible, save the frame as a seed."""

    def __init__(self) -> None:
        self.names = LineEdit(
            label="keypoints",
            value="nose, leftear, rightear, tail_base",
            tooltip="Comma-separated keypoint names, in the order they are placed.",
        )
        self.instance = LineEdit(label="instance", value="animal1", tooltip="Name of the animal being labelled.")
        self.add = PushButton(
            text="Add keypoints for this instance",
            tooltip="Place the missing named keypoints of this instance in a row at the view "
            "centre on the current frame; then drag each onto its body part.",
        )
        self.toggle_visible = PushButton(
            text="Mark selected hidden / visible",
            tooltip=with_key("Toggle whether the selected keypoints are occluded on this frame.", "toggle_hidden"),
        )
        self.save = PushButton(
            text="Save frame as manual seed",
            tooltip=with_key(
                "Write this frame's keypoints (and any masks painted on it) as a manual seed annotation.", "save_frame"
            ),
        )
        self.status = status_label()
        super().__init__(
            widgets=[self.names, self.instance, self.add, self.toggle_visible, self.save, self.status], labels=True
        )


class TrackPanel(Container):
    """Track / Track from here / Stop, an optional end frame, progress and speed."""

    def __init__(self) -> None:
        self.track = PushButton(
            text="Track",
            tooltip="Track every stale frame: between the manual frames (both "
            "ways, merged), before the first and after the last.",
        )
        self.track_here = PushButton(
            text="Track from here",
            tooltip=with_key(
                "Re-track from the current frame (its keypoints are the seed) to the end.", "track_from_here"
            ),
        )
        self.stop = PushButton(text="Stop", tooltip="Stop after the current frame; results so far are kept.")
        self.stop.enabled = False
        self.to_end = CheckBox(text="to the end", value=True, tooltip="Track to the last frame of the video.")
        self.end_frame = SpinBox(
            value=0, min=0, max=0, enabled=False, tooltip="Last frame to track (inclusive), when 'to the end' is off."
        )
        self.to_end.changed.connect(lambda on: setattr(self.end_frame, "enabled", not on))
        end_widgets: list[Widget] = [self.to_end, self.end_frame]
        end = Container(widgets=end_widgets, layout="horizontal", labels=False, label="end frame")
        end.margins = (0, 0, 0, 0)
        self.both_ways = CheckBox(
            text="both ways between manual frames",
            value=RunSettings().direction == "both",
            tooltip=RunSettings.model_fields["direction"].description,
        )
        buttons = Container(widgets=[self.track, self.track_here, self.stop], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.status = status_label()
        self.retrack = PushButton(
            text="Re-track with this model",
            tooltip="Track every frame again from the first manual frame with the backbone and short side chosen now.",
        )
        self.retrack.visible = False
        super().__init__(widgets=[buttons, end, self.both_ways, self.progress, self.status, self.retrack], labels=True)

    @property
    def direction(self) -> Direction:
        """``"both"`` or ``"forward"`` (see RunSettings.direction)."""
        return "both" if self.both_ways.value else "forward"

    def set_frame_count(self, n_frames: int) -> None:
        """The end frame can be any frame of the video (``n_frames`` of them)."""
        self.end_frame.max = max(int(n_frames) - 1, 0)

    @property
    def end(self) -> int | None:
        """The chosen last frame, or None for the end of the video."""
        return None if self.to_end.value else int(self.end_frame.value)

    def set_running(self, running: bool) -> None:
        """Enable Stop while a run is going, the Track buttons otherwise."""
        if running:
            self.retrack.visible = False
        self.track.enabled = not running
        self.track_here.enabled = not running
        self.stop.enabled = running


class DisplayPanel(Container):
    """Trajectories (tail length) and the similarity heatmap toggle."""

    def __init__(self) -> None:
        self.trajectories = CheckBox(
            text="Show trajectories", value=True, tooltip="A Tracks layer with each keypoint's recent path."
        )
        self.tail_length = SpinBox(
            label="tail length", value=15, min=1, max=10_000, tooltip="How many past frames of each path are drawn."
        )
        self.heatmap = CheckBox(
            text="Similarity heatmap (click the video)",
            value=False,
            tooltip="While on, clicking the video shows how similar every patch of the frame is to the clicked one.",
        )
        self.from_seed = CheckBox(
            text="compare with the seed frame's patch",
            value=False,
            tooltip="Take the clicked patch from the nearest earlier manual frame instead of the current frame.",
        )
        self.opacity = FloatSlider(label="heatmap opacity", value=0.6, min=0.0, max=1.0, step=0.05)
        self.status = status_label()
        super().__init__(
            widgets=[self.trajectories, self.tail_length, self.heatmap, self.from_seed, self.opacity, self.status],
            labels=True,
        )
