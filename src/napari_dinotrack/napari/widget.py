"""The "DINO Keypoint Tracker" dock widget: one widget hosting collapsible panels, wired to helpers.

Panels (layout only, ``panels.py``, ``proofread_panel.py``): Layers, Backbone, Motion prior & mask,
Seed tools, Track, Proofread, Display. The behaviour lives in small helpers that this widget
connects to the panels:

* ``keypoint_edits.KeypointEditor``: the user's corrections, saved as manual frames;
* ``masks_layer.MasksLayerController``: the masks Labels layer (live, paintable);
* ``live_display.LiveDisplay``: a run's results pushed to the layers, throttled;
* ``track_run.TrackRun`` / ``worker.run_tracking``: one run, GUI side / worker thread side;
* ``heatmap.HeatmapController``: the similarity heatmap;
* ``proofreader.Proofreader``: suspicious frames, the score plot, colours, identity swaps;
* ``shortcuts``: the keyboard shortcuts bound on the viewer while the dock is open;
* ``panel_settings``: the settings remembered between sessions.

The engine writes all result files itself; the dock only displays them and writes the user's
manual corrections (``write_manual``) and painted masks.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QWidget

from ..errors import UserError
from .backbones import LOCAL_FOLDER, BackboneCache, BackboneChoice, describe_source
from .batch_panel import FolderBatchPanel
from .convert import empty_features, parse_names, usable_names
from .exchange_tools import ExchangeTools
from .heatmap import HeatmapController
from .keypoint_edits import KeypointEditor
from .layer_styles import KeypointsStyle, TracksStyle, point_size_for
from .live_display import LiveDisplay
from .masks_layer import MasksLayerController
from .panel_settings import read_panels, show_in_panels
from .panels import (
    PROBLEM_SIGN,
    BackbonePanel,
    DisplayPanel,
    LayersPanel,
    SeedPanel,
    TrackerConfigPanel,
    TrackPanel,
    stack_collapsible,
)
from .proofread_panel import ProofreadPanel
from .proofreader import Proofreader
from .reader import META_KEY
from .settings import WidgetSettings, load_settings, save_settings
from .shortcuts import bind_shortcuts
from .track_run import RunHolder, TrackRun, check_frame_range, folder_in_use, wait_for_folder
from .video_context import VideoContext, video_context
from .viewer_layers import fits_video, layer_meta, layers_of_type, view_centre
from .worker import TrackJob

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points, Tracks

    import napari

    from ..proofreading.identity import SwapReport

__all__ = ["DinoTrackerWidget"]

#: settings are saved this long after the last change
SETTINGS_DEBOUNCE_MS = 500


class DinoTrackerWidget(QWidget):
    """Track keypoints through a video with DINO features; label, correct and re-run.

    Args:
        napari_viewer: the viewer (injected by napari).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.backbones = BackboneCache()
        self.keypoints_style = KeypointsStyle()
        self.tracks_style = TracksStyle()
        self.run: TrackRun | None = None
        self.last_summary: dict[str, Any] = {}

        self.layers_panel = LayersPanel(*(partial(self._layer_choices, kind) for kind in ("Image", "Points", "Labels")))
        self.backbone_panel = BackbonePanel()
        self.config_panel = TrackerConfigPanel()
        self.seed_panel = SeedPanel()
        self.track_panel = TrackPanel()
        self.proofread_panel = ProofreadPanel()
        self.display_panel = DisplayPanel()
        self.exchange = ExchangeTools(self)
        self.batch_panel = FolderBatchPanel(self.backbone_panel, self.config_panel, self.video_context)
        self.collapsibles = stack_collapsible(
            self,
            [
                ("Layers", self.layers_panel, True),
                ("Backbone", self.backbone_panel, True),
                ("Motion prior & mask", self.config_panel, False),
                ("Seed tools", self.seed_panel, True),
                ("Track", self.track_panel, True),
                ("Proofread", self.proofread_panel, True),
                ("Display: trajectories & heatmap", self.display_panel, True),
                ("Export · import · clean-up · render", self.exchange.panel, False),
                ("Track a folder in the background", self.batch_panel, False),
            ],
        )
        self.setMinimumWidth(360)

        self.edits = KeypointEditor(
            self.keypoints_style,
            keypoint_names=self._keypoint_names,
            instance_name=self._instance_name,
            current_frame=self.current_frame,
            video_context=self.video_context,
            report=self._seed_status,
            parent=self,
        )
        self.masks = MasksLayerController(
            self.viewer,
            self.layers_panel.masks,
            lambda: self.points_layer,
            self.current_frame,
            self.video_context,
            frame_animals=self._animals,
            warn=self._mask_warning,
        )
        self.display = LiveDisplay(
            self.viewer,
            self.edits,
            self.masks,
            points_layer=lambda: self.points_layer,
            ensure_points_layer=self.ensure_points_layer,
            panel=self.display_panel,
            tracks_style=self.tracks_style,
            keypoints_style=self.keypoints_style,
            parent=self,
        )
        self.proofreader = Proofreader(
            self.viewer,
            self.proofread_panel,
            self.keypoints_style,
            restyle=self.restyle,
            video_context=self.video_context,
            current_frame=self.current_frame,
            busy=lambda: self.is_running,
            before_swap=self._before_swap,
            after_swap=self._after_swap,
            parent=self,
        )
        # what a run draws (trajectories layer, label glyphs) is made right after the keypoints layer is
        # picked (outside the event), not mid-run
        self._prepare_display = QTimer(self)
        self._prepare_display.setSingleShot(True)
        self._prepare_display.setInterval(0)
        self._prepare_display.timeout.connect(self.display.prepare)
        self._settings_timer = QTimer(self)
        self._settings_timer.setSingleShot(True)
        self._settings_timer.setInterval(SETTINGS_DEBOUNCE_MS)
        self._settings_timer.timeout.connect(self.save_settings)
        self._suggested_for: set[int] = set()
        self.heatmap = HeatmapController(
            self.viewer,
            image_layer=lambda: self.layers_panel.image.value,
            backbone=self.backbones.get,
            backbone_key=self.backbone_choice,
            short_side=lambda: int(self.backbone_panel.short_side.value),
            reference_frame=self._heatmap_reference,
            on_error=self._heatmap_error,
        )

        self.apply_settings(load_settings())
        self._connect()
        # if napari deletes the dock while a run is going, end the run (the worker holds no widget)
        holder = self._holder = RunHolder()
        self.destroyed.connect(holder.stop)
        self._docked = False
        self._closed = False
        self._waiting_for_folder = False
        self._unbind_keys = bind_shortcuts(
            self.viewer,
            {
                "next_suspicious": self.proofreader.next_suspicious,
                "previous_suspicious": self.proofreader.previous_suspicious,
                "toggle_hidden": self.toggle_selected_visibility,
                "save_frame": self.save_current_frame,
                "track_from_here": self.track_from_here,
            },
        )
        self._on_layers_changed()
        self._on_model_changed()

    # ---------------------------------------------------------------- wiring
    def _connect(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.moved.connect(self._on_layers_changed)
        lp = self.layers_panel
        lp.image.changed.connect(self._on_image_changed)
        lp.points.changed.connect(self.edits.attach)
        lp.points.changed.connect(self.proofreader.attach)
        lp.points.changed.connect(self._show_mask_names)
        lp.points.changed.connect(lambda *_: self._prepare_display.start())
        lp.masks.changed.connect(self.masks.adopt)
        lp.new_masks.clicked.connect(self.new_masks_layer)
        bp = self.backbone_panel
        bp.model.changed.connect(self._on_model_changed)
        bp.folder.changed.connect(self._on_model_changed)
        for w in (bp.model, bp.folder, bp.short_side, bp.device, bp.precision):
            w.changed.connect(self._settings_changed)
        bp.check.clicked.connect(self.load_model_now)
        self.config_panel.changed.connect(self._settings_changed)
        sp = self.seed_panel
        sp.names.changed.connect(self._on_names_changed)
        sp.instance.changed.connect(self._on_names_changed)
        sp.add.clicked.connect(self.add_instance_keypoints)
        sp.toggle_visible.clicked.connect(self.toggle_selected_visibility)
        sp.save.clicked.connect(self.save_current_frame)
        tp = self.track_panel
        tp.track.clicked.connect(lambda: self.track())
        tp.track_here.clicked.connect(self.track_from_here)
        tp.stop.clicked.connect(self.stop)
        tp.retrack.clicked.connect(self.retrack_with_this_model)
        tp.both_ways.changed.connect(self._settings_changed)
        dp = self.display_panel
        dp.trajectories.changed.connect(self.display.show_trajectories)
        dp.tail_length.changed.connect(self.display.set_tail_length)
        dp.heatmap.changed.connect(self.heatmap.set_enabled)
        dp.opacity.changed.connect(self.heatmap.set_opacity)
        for editor in (dp.trajectories, dp.tail_length, dp.from_seed, dp.opacity):
            editor.changed.connect(self._settings_changed)

    # ---------------------------------------------------------------- layers
    def _layer_choices(self, kind: str, _widget: Any = None) -> list[tuple[str, Any]]:
        """``(name, layer)`` pairs for a layer picker: the viewer's layers of napari class ``kind``.

        Masks layers must cover the chosen video exactly (see :func:`~.viewer_layers.fits_video`).
        """
        import napari.layers

        layers = [
            lyr
            for lyr in layers_of_type(self.viewer, getattr(napari.layers, kind))
            if not layer_meta(lyr).get("heatmap")
        ]  # the heatmap is no video
        if kind == "Labels":
            image = self.layers_panel.image.value if hasattr(self, "layers_panel") else None
            layers = [lyr for lyr in layers if image is None or fits_video(lyr, image)]
        return [(lyr.name, lyr) for lyr in layers]

    def _on_layers_changed(self, *_: Any) -> None:
        lp = self.layers_panel
        for layer in self.viewer.layers:  # a renamed layer shows its new name in the pickers
            layer.events.name.connect(self._on_layers_changed)
        lp.reset_choices()
        for combo, kind in ((lp.image, "Image"), (lp.points, "Points"), (lp.masks, "Labels")):
            layers = [lyr for _, lyr in self._layer_choices(kind)]
            if combo.value is None and layers:
                preferred = [lyr for lyr in layers if layer_meta(lyr)]  # the plugin's own layers first
                combo.value = (preferred or layers)[-1]
        if self.edits.layer is not None and self.edits.layer not in self.viewer.layers:
            self.edits.attach(None)
        self.proofreader.attach(self.points_layer)
        self._show_mask_names()

    def _on_image_changed(self, layer: Image | None) -> None:
        """Frame limits follow the video; one opened from the sample suggests a backbone (once per layer)."""
        if layer is not None:
            self.track_panel.set_frame_count(layer.data.shape[0])
            self.proofread_panel.set_frame_range(layer.data.shape[0])
        self.layers_panel.masks.reset_choices()  # masks layers must fit this video
        hints = layer_meta(layer).get("suggest")
        if layer is not None and hints and id(layer) not in self._suggested_for:
            self._suggested_for.add(id(layer))
            if hints.get("model"):
                self.backbone_panel.set_model(str(hints["model"]))
            if hints.get("short_side"):
                self.backbone_panel.short_side.value = int(hints["short_side"])

    @property
    def points_layer(self) -> Points | None:
        """The keypoints layer the widget works on."""
        return self.layers_panel.points.value

    @property
    def image_layer(self) -> Image | None:
        """The video layer."""
        return self.layers_panel.image.value

    @property
    def labels_layer(self) -> Labels | None:
        """The masks layer, if any."""
        return self.layers_panel.masks.value

    def current_frame(self) -> int:
        """The frame shown by the time slider."""
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def video_context(self) -> VideoContext:
        """Video path, result layout and frame size of the chosen layers; UserError if unknown."""
        return video_context(self.image_layer, self.points_layer)

    def ensure_points_layer(self) -> Points:
        """The keypoints layer, created (empty, styled) if there is none."""
        layer = self.points_layer
        if layer is not None:
            return layer
        try:
            ctx = self.video_context()
            name, meta = (
                f"{ctx.stem} keypoints",
                {META_KEY: {"video_path": str(ctx.video_path), "result_folder": str(ctx.layout.folder)}},
            )
            self.keypoints_style.size = point_size_for(ctx.height, ctx.width)
        except UserError:
            name, meta = "keypoints", {}
        self.keypoints_style.name = name
        kwargs = self.keypoints_style.as_kwargs(None)
        kwargs["feature_defaults"]["instance"] = self._instance_name()
        layer = self.viewer.add_points(np.zeros((0, 3)), ndim=3, features=empty_features(), metadata=meta, **kwargs)
        self.layers_panel.points.value = layer
        self.edits.attach(layer)
        return layer

    # ---------------------------------------------------------------- backbone and tracker settings
    def backbone_choice(self) -> BackboneChoice:
        """The backbone currently selected in the panel."""
        bp = self.backbone_panel
        return BackboneChoice(bp.model_name, str(bp.device.value), str(bp.precision.value))

    def _on_model_changed(self, *_: Any) -> None:
        bp = self.backbone_panel
        bp.folder.visible = bp.model.value == LOCAL_FOLDER
        try:
            bp.source.value = describe_source(bp.model_name or str(bp.model.value))
        except Exception as exc:  # the line is informative only
            bp.source.value = f"⚠ {exc}"
        self.heatmap.cache.clear()

    def load_model_now(self) -> Any:
        """Load the selected backbone in a worker and report where it came from (or why not)."""
        from napari.qt.threading import create_worker

        choice = self.backbone_choice()
        if not choice.model:
            self.backbone_panel.source.value = "⚠ Choose a model folder first."
            return None
        self.backbone_panel.source.value = f"Loading {choice.model} …"
        worker = create_worker(self.backbones.get, choice, _ignore_errors=True)
        worker.returned.connect(self._on_model_loaded)
        worker.errored.connect(self._on_backbone_error)
        worker.start()
        self._model_worker = worker
        return worker

    def _on_model_loaded(self, backbone: Any) -> None:
        source = getattr(backbone, "source", "") or describe_source(self.backbone_panel.model_name)
        dtype = str(getattr(backbone, "dtype", "float32")).removeprefix("torch.")
        self.backbone_panel.source.value = (
            f"Loaded {backbone.name} on {backbone.device} ({dtype}, {backbone.feature_dim}-d, "
            f"patch {backbone.patch_size}). {source}"
        )

    def _on_backbone_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._backbone_problem(str(exc))
        show_error(str(exc))

    def _backbone_problem(self, text: str) -> None:
        self.backbone_panel.source.value = "⚠ " + text

    # ---------------------------------------------------------------- remembered settings
    def current_settings(self) -> WidgetSettings:
        """The widget's state as a :class:`WidgetSettings`."""
        return read_panels(
            self.backbone_panel, self.config_panel, self.seed_panel, self.display_panel, self.track_panel
        )

    def apply_settings(self, s: WidgetSettings) -> None:
        """Show saved settings in the panels (bad entries are skipped)."""
        show_in_panels(s, self.backbone_panel, self.config_panel, self.seed_panel, self.display_panel, self.track_panel)
        self.heatmap.set_opacity(self.display_panel.opacity.value)
        self._on_names_changed()

    def _settings_changed(self, *_: Any) -> None:
        self._settings_timer.start()

    def save_settings(self) -> Path | None:
        """Write the current settings to the settings file now."""
        self._settings_timer.stop()
        return save_settings(self.current_settings())

    # ---------------------------------------------------------------- seed tools
    def _keypoint_names(self) -> list[str]:
        return usable_names(parse_names(self.seed_panel.names.value))[0] or ["point"]

    def _instance_name(self) -> str:
        names = usable_names([self.seed_panel.instance.value.strip()])[0]
        return names[0] if names else "animal1"

    def _name_problems(self) -> list[str]:
        """Why typed keypoint or instance names are not used (they would break or inject into the CSV)."""
        instance = self.seed_panel.instance.value.strip()
        return usable_names(parse_names(self.seed_panel.names.value) + ([instance] if instance else []))[1]

    def _seed_status(self, text: str) -> None:
        self.seed_panel.status.value = text

    def _on_names_changed(self, *_: Any) -> None:
        problems = self._name_problems()
        if problems:
            self._seed_status("⚠ Not used: " + "; ".join(problems))
        self.keypoints_style.keypoint_names = self._keypoint_names()
        self.edits.update_defaults()
        self._settings_changed()
        if hasattr(self, "masks"):
            self._show_mask_names()

    def add_instance_keypoints(self) -> list[int]:
        """Place this instance's missing keypoints in a row at the view centre; return the new row indices."""
        layer = self.ensure_points_layer()
        return self.edits.add_instance_keypoints(
            layer, self.current_frame(), lambda: view_centre(self.viewer, self.image_layer)
        )

    def toggle_selected_visibility(self) -> None:
        """Flip hidden/visible for the selected keypoints (and save their frames)."""
        self.edits.toggle_visibility(self.points_layer)

    def save_current_frame(self) -> Path | None:
        """Write the current frame's keypoints (and painted masks) as a manual seed; saves pending edits."""
        from napari.utils.notifications import show_error

        t = self.current_frame()
        try:  # masks first: the frame's JSON takes its outlines from them
            self.save_painted_masks({t})
        except (OSError, ValueError, UserError) as exc:
            show_error(f"Could not save the masks of frame {t}: {exc}")
        self.edits.dirty.add(t)
        paths = self.flush_edits(force={t})
        return paths.get(t)

    def flush_edits(self, force: set[int] | None = None) -> dict[int, Path]:
        """Save every edited frame (plus ``force``) as manual now; return the written files."""
        return self.edits.flush(force)

    def save_painted_masks(self, frames: set[int] | None = None) -> list[int]:
        """Write painted mask frames (all, or ``frames``) to the result folder's mask store."""
        return self.masks.save_painted(frames)

    # ---------------------------------------------------------------- masks
    def new_masks_layer(self) -> Labels | None:
        """Add an empty masks layer of the video's size (and pick it); None when there is no video."""
        try:
            ctx = self.video_context()
        except UserError as exc:
            self.layers_panel.mask_names.value = f"{PROBLEM_SIGN} {exc}"
            return None
        self.masks.live_labels(ctx, create=True)
        self._show_mask_names()
        return self.labels_layer

    def _animals(self, frame: int | None = None) -> list[str]:
        """The animals with keypoints (on ``frame``, or anywhere), in the order they appear."""
        layer = self.points_layer
        if layer is None or not len(layer.data) or "instance" not in layer.features:
            return [self._instance_name()] if frame is None else []
        names = layer.features["instance"].astype(str).to_numpy()
        if frame is not None:
            from .convert import row_frames

            names = names[row_frames(layer.data) == frame]
        return list(dict.fromkeys(names.tolist()))

    def _show_mask_names(self, *_: Any) -> None:
        """Say which label value paints which animal, or why a Labels layer is not offered."""
        self.layers_panel.mask_names.value = self.masks.status_line(self.image_layer)

    def _mask_warning(self, message: str) -> None:
        from napari.utils.notifications import show_warning

        self.layers_panel.mask_names.value = f"{PROBLEM_SIGN} {message}"
        show_warning(message)

    # ---------------------------------------------------------------- display
    def restyle(self) -> None:
        """Recolour the keypoints and the trajectories (after the colouring changed)."""
        if self.points_layer is not None:
            self.edits.restyle(self.points_layer)
        if self.display_panel.trajectories.value:
            self.display.update_trajectories()

    def update_trajectories(self) -> Tracks | None:
        """Rebuild the trajectories Tracks layer from the keypoints layer."""
        return self.display.update_trajectories()

    @property
    def refresh_stats(self) -> dict[str, float]:
        """How often and how long the last run refreshed the layers (``count``, ``max_ms``, ``total_ms``)."""
        return self.display.refresh_stats

    # ---------------------------------------------------------------- tracking
    @property
    def is_running(self) -> bool:
        """Whether a tracking run is in progress."""
        return self.run is not None and self.run.running

    @property
    def worker(self) -> Any:
        """The running tracking worker, or None."""
        return self.run.worker if self.run is not None and self.is_running else None

    def track_from_here(self) -> Any:
        """Re-track from the current frame (its keypoints are the seed) to the end frame."""
        return self.track(start_frame=self.current_frame())

    def track(self, start_frame: int | None = None) -> Any:
        """Start tracking in a worker thread; returns the worker (None if it could not start).

        ``start_frame=None`` tracks whatever is stale (from every manual frame onwards);
        ``start_frame=t`` re-tracks from frame ``t`` to the end.
        """
        from napari.utils.notifications import show_error

        if self.is_running or self._closed:
            return self.worker
        try:
            job, ctx = self._prepare_job(start_frame)
        except UserError as exc:
            show_error(str(exc))
            self.track_panel.status.value = f"{PROBLEM_SIGN} {exc}"
            return None
        if folder_in_use(ctx.layout.folder):  # a run of a closed dock is still finishing its frame
            if not self._waiting_for_folder:
                self._waiting_for_folder = True
                wait_for_folder(ctx.layout.folder, lambda: self._start_after_wait(start_frame))
            self.track_panel.status.value = (
                f"{PROBLEM_SIGN} The previous run on {ctx.layout.folder} is still "
                "stopping; tracking starts as soon as it has."
            )
            return None
        self.display.start(ctx)
        self.run = TrackRun(
            job,
            ctx.layout.folder,
            self.backbones,
            self.display,
            self.track_panel,
            on_backbone_error=self._backbone_problem,
            on_end=self._on_run_end,
        )
        self._holder.control = self.run.control
        return self.run.start()

    def _start_after_wait(self, start_frame: int | None) -> None:
        self._waiting_for_folder = False
        if not self._closed:
            self.track(start_frame)

    def retrack_with_this_model(self) -> Any:
        """Track everything again, from the first manual frame, with the backbone and short side chosen now."""
        from ..errors import AnnotationError
        from ..io.labelme import manual_frames

        try:
            seeds = manual_frames(self.video_context().layout)
        except (UserError, AnnotationError) as exc:
            self.track_panel.status.value = f"{PROBLEM_SIGN} {exc}"
            return None
        if not seeds:
            return self.track()  # says what is missing
        return self.track(start_frame=seeds[0])

    def _prepare_job(self, start_frame: int | None) -> tuple[TrackJob, VideoContext]:
        from ..errors import AnnotationError
        from ..io.labelme import manual_frames

        ctx = self.video_context()
        if not ctx.video_path.exists():
            raise UserError(f"The video {ctx.video_path} does not exist (moved or deleted?).")
        try:
            config = self.config_panel.config()
        except ValueError as exc:
            raise UserError(f"Check the tracker settings: {exc}") from None
        choice = self.backbone_choice()
        if not choice.model:
            raise UserError("Choose the model folder in the Backbone panel (or pick another model).")
        # unsaved corrections, and an unsaved labelled current frame, become manual seeds
        self.flush_edits(force=self.edits.unsaved_labelled_frame(self.current_frame(), ctx))
        try:
            self.save_painted_masks()
        except (OSError, ValueError) as exc:
            raise UserError(f"Could not save the painted masks: {exc}") from None
        seeds: list[int] = []
        if start_frame is None:
            try:
                seeds = manual_frames(ctx.layout)
            except AnnotationError as exc:
                raise UserError(str(exc)) from None
        end_frame = check_frame_range(ctx, start_frame, self.track_panel.end, seeds)
        job = TrackJob(
            str(ctx.video_path),
            ctx.result_folder,
            choice,
            int(self.backbone_panel.short_side.value),
            config,
            start_frame,
            end_frame,
            self.track_panel.direction,
        )
        return job, ctx

    def _on_run_end(self, summary: dict[str, Any]) -> None:
        self.run = None
        self.last_summary = summary

    def stop(self) -> None:
        """Stop the run after the current frame; what was tracked so far stays on disk."""
        if self.run is not None:
            self.run.stop()

    # ---------------------------------------------------------------- heatmap hooks
    def _heatmap_reference(self, frame: int) -> int | None:
        """The seed frame to take the clicked patch from (the last manual frame up to ``frame``), if asked for."""
        if not self.display_panel.from_seed.value:
            return None
        from ..errors import AnnotationError
        from ..io.labelme import manual_frames

        try:
            seeds = manual_frames(self.video_context().layout)
        except (UserError, AnnotationError, OSError):
            return None
        before = [s for s in seeds if s <= frame]
        return before[-1] if before else (seeds[0] if seeds else None)

    def _heatmap_error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.display_panel.status.value = "⚠ " + message.splitlines()[0]
        show_error(message)

    # ---------------------------------------------------------------- proofreading hooks
    def _before_swap(self) -> str | None:
        """Why an identity swap cannot happen now (None: it can; pending edits are saved first)."""
        if self.is_running:
            return "Stop the run first: it is writing these frames."
        self.flush_edits()
        return None

    def _after_swap(self, report: SwapReport) -> None:
        if report.swapped:
            self.display.reload_frames(self.video_context().layout, report.swapped)

    # ---------------------------------------------------------------- teardown
    def event(self, event: Any) -> bool:
        """Closing the dock (×) takes the widget out of its dock: shut down then, as on close."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:
                self.shutdown()
        return super().event(event)

    def closeEvent(self, event: Any) -> None:
        """Save settings and pending edits, stop a running job."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop tracking, save pending edits and settings, let go of the viewer (idempotent)."""
        if self.run is not None:
            self.run.control.request_stop()
        if self._closed:
            return
        self._closed = True
        try:
            self.flush_edits()
        except Exception as exc:  # never lose corrections silently: say so, they are still in the layer
            logger.exception("unsaved corrections could not be written")
            from napari.utils.notifications import show_error

            show_error(
                f"Your last corrections could not be saved ({exc}); they are still in the keypoints "
                "layer: reopen the tracker and save the frame (Shift-S)."
            )
        with contextlib.suppress(Exception):
            self.save_settings()
        self.heatmap.set_enabled(False)
        self._unbind_keys()
        with contextlib.suppress(Exception):
            self.proofreader.close()
        with contextlib.suppress(Exception):
            self.display.close()
        layers = self.viewer.layers
        for emitter in (layers.events.inserted, layers.events.removed, layers.events.moved):
            with contextlib.suppress(Exception):
                emitter.disconnect(self._on_layers_changed)
        for layer in layers:
            with contextlib.suppress(Exception):
                layer.events.name.disconnect(self._on_layers_changed)
