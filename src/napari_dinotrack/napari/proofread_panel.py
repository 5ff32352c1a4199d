"""The Proofread panel (layout only): suspicious-frame navigation, the score/speed plot, colours, identity swap.

The behaviour is in :class:`~napari_dinotrack.napari.proofreader.Proofreader`.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox

from ..proofreading.suspicious import SuspicionSettings
from .panels import compact, status_label, wrapped
from .score_plot import ScorePlot
from .shortcuts import with_key

__all__ = ["COLOUR_BY", "LEGEND", "ProofreadPanel"]

#: colour-by choices: label -> KeypointsStyle.colour_by
COLOUR_BY = {"keypoint": "keypoint", "animal": "instance"}
LEGEND = "● tracked · ◆ manual (white ring) · ✕ low score · ○ hidden"


class ProofreadPanel(Container):
    """Previous/next suspicious frame, what is wrong here, a score/speed plot, colours and an identity swap."""

    # the suspicious-frame count label shadows Container.count (a sequence method), which this panel never uses
    count: Label  # type: ignore[assignment]

    def __init__(self) -> None:
        defaults = SuspicionSettings()
        fields = SuspicionSettings.model_fields
        self.previous = PushButton(
            text="◀ Previous",
            tooltip=with_key(
                "Go to the previous frame with a lost point, a low score, a jump or two-way disagreement.",
                "previous_suspicious",
            ),
        )
        self.next = PushButton(
            text="Next ▶",
            tooltip=with_key(
                "Go to the next frame with a lost point, a low score, a jump or two-way disagreement.",
                "next_suspicious",
            ),
        )
        nav = Container(widgets=[self.previous, self.next], layout="horizontal", labels=False)
        nav.margins = (0, 0, 0, 0)
        self.count = wrapped(Label(value="No results to check yet."))
        self.here = wrapped(Label(value=""))
        self.min_score = FloatSpinBox(
            label="low score below",
            value=defaults.min_score,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip=fields["min_score"].description,
        )
        self.jump_factor = FloatSpinBox(
            label="jump ×",
            value=defaults.jump_factor,
            min=1.0,
            max=1000.0,
            step=0.5,
            tooltip=fields["jump_factor"].description,
        )
        self.keypoint = compact(
            ComboBox(
                label="plot",
                choices=[],
                nullable=True,
                tooltip="The keypoint whose score and speed are plotted (selecting one "
                "point in the layer picks it too).",
            )
        )
        self.plot = ScorePlot()
        self.colour_by = ComboBox(
            label="colour by",
            choices=list(COLOUR_BY),
            value="keypoint",
            tooltip="Colour points and trajectories by body part or by animal.",
        )
        self.legend = wrapped(Label(value=LEGEND))
        header = Label(value="<b>Swap identities</b>")
        self.first = compact(ComboBox(label="swap", choices=[], nullable=True, tooltip="One animal."))
        self.second = compact(ComboBox(label="with", choices=[], nullable=True, tooltip="The other animal."))
        self.start = SpinBox(label="from frame", value=0, min=0, max=0, tooltip="First frame of the swap.")
        self.end = SpinBox(label="to frame", value=0, min=0, max=0, tooltip="Last frame of the swap (inclusive).")
        self.include_manual = CheckBox(
            text="also manual frames",
            value=False,
            tooltip="Also swap the two animals on your own labelled frames in the range "
            "(off: they are kept as labelled).",
        )
        self.swap = PushButton(
            text="Swap identities",
            tooltip="Exchange the two animals' names on every frame of "
            "the range: keypoints, masks and table. Swap again "
            "to undo.",
        )
        self.status = status_label()
        super().__init__(
            widgets=[
                nav,
                self.count,
                self.here,
                self.min_score,
                self.jump_factor,
                self.keypoint,
                self.colour_by,
                self.legend,
                header,
                self.first,
                self.second,
                self.start,
                self.end,
                self.include_manual,
                self.swap,
                self.status,
            ],
            labels=True,
        )
        # the plot is a plain Qt widget: it goes right below its keypoint chooser
        layout = self.native.layout()
        layout.insertWidget(layout.indexOf(self.keypoint.native.parentWidget()) + 1, self.plot)

    def set_frame_range(self, n_frames: int) -> None:
        """Limit the swap's frame boxes to the video; the swap runs to its end unless changed."""
        last = max(int(n_frames) - 1, 0)
        for box in (self.start, self.end):
            box.max = last
        self.end.value = last

    def settings(self) -> SuspicionSettings:
        """The suspicion settings shown in the panel (the rest at their defaults)."""
        return SuspicionSettings(min_score=float(self.min_score.value), jump_factor=float(self.jump_factor.value))
