"""The "DINO Keypoint Tracker" dock widget: one widget hosting collapsible panels.

Panels (see ``panels.py``): Layers, Backbone, Motion prior & mask, Seed tools, Track, Display.

Threading rules (napari's): the engine runs in a ``thread_worker`` generator that only yields
batches of :class:`~napari_dinotrack.pipeline.FrameResult`; every layer change happens here,
on the GUI thread, at most every ``REFRESH_MS`` (more rarely when refreshing gets expensive), so
the viewer stays responsive while tracking. The engine writes all result files itself; this
widget only displays them and writes the user's manual corrections (``write_manual``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget
from superqt import QCollapsible

from .backbones import LOCAL_FOLDER, BackboneCache, BackboneChoice, describe_source
from .layers import (
    FEATURE_COLUMNS,
    KeypointsStyle,
    LiveLabels,
    TracksStyle,
    annotations_to_points,
    empty_features,
    masks_to_labels,
    parse_names,
    point_size_for,
    points_to_annotation,
    points_to_tracks,
)
from .panels import (
    CUSTOM,
    BackbonePanel,
    DisplayPanel,
    LayersPanel,
    SeedPanel,
    TrackerConfigPanel,
    TrackPanel,
)
from .reader import META_KEY
from .settings import WidgetSettings, load_settings, save_settings

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points, Tracks

    import napari

    from ..io.annotations import FrameAnnotation
    from ..io.paths import ResultLayout
    from ..pipeline import FrameResult
    from ..tracking.config import TrackerConfig

__all__ = ["DinoTrackerWidget", "RunControl", "TrackJob", "WorkerError", "run_tracking"]

logger = logging.getLogger(__name__)

#: shortest time between two live layer refreshes while tracking
REFRESH_MS = 100
#: trajectories are rebuilt at most this often while tracking
TRACKS_REFRESH_S = 0.5
#: the worker yields a batch at most this often
YIELD_EVERY_S = 0.05
#: user edits are saved this long after the last change
SAVE_DEBOUNCE_MS = 400


class UserError(Exception):
    """A problem the user can fix; its message is shown as-is."""


# ------------------------------------------------------------------------------ worker side


@dataclass(frozen=True)
class TrackJob:
    """Everything one tracking run needs, captured on the GUI thread."""

    video_path: str
    result_folder: str | None
    backbone: BackboneChoice
    short_side: int
    config: TrackerConfig
    start_frame: int | None = None
    end_frame: int | None = None


class RunControl:
    """Thread-safe stop switch shared by the GUI and the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processor: Any = None
        self.results: Iterator[Any] | None = None
        self.stop_requested = False

    def attach(self, processor: Any) -> None:
        """Called by the worker once the processor exists (stops it at once if asked to)."""
        with self._lock:
            self.processor = processor
            stop = self.stop_requested
        if stop:
            processor.stop()

    def request_stop(self) -> None:
        """Ask the run to end after the current frame (safe from any thread)."""
        with self._lock:
            self.stop_requested = True
            proc = self.processor
        if proc is not None:
            proc.stop()


class WorkerError(Exception):
    """Carries a RuntimeError out of a generator worker.

    superqt's GeneratorWorker treats a RuntimeError raised by the generator as "the worker was
    deleted": it only warns and never emits ``errored`` or ``finished``. The engine's
    ``BackboneUnavailableError`` and torch errors are RuntimeErrors, so they are wrapped.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def run_tracking(job: TrackJob, control: RunControl, backbones: BackboneCache,
                 yield_every_s: float = YIELD_EVERY_S) -> Iterator[list[FrameResult]]:
    """Generator run in the worker thread: load the backbone, track, yield batches of results.

    Touches no Qt or napari object. Results are batched (one yield per ``yield_every_s`` at
    most) so the GUI thread gets few, cheap events. Errors reach ``errored`` (RuntimeErrors
    wrapped in :class:`WorkerError`).
    """
    try:
        yield from _run_tracking(job, control, backbones, yield_every_s)
    except RuntimeError as exc:
        raise WorkerError(exc) from exc


def _run_tracking(job: TrackJob, control: RunControl, backbones: BackboneCache,
                  yield_every_s: float) -> Iterator[list[FrameResult]]:
    backbone = backbones.get(job.backbone)
    with contextlib.suppress(ImportError):
        import scipy.spatial  # noqa: F401  (napari's Tracks layer needs it: import it here, not on the GUI thread)
    if control.stop_requested:
        return
    from ..pipeline import DinoKeypointVideoProcessor

    processor = DinoKeypointVideoProcessor(
        job.video_path, job.result_folder, model_name=backbone, short_side=job.short_side,
        device=job.backbone.device_arg, runtime_config=job.config,
    )
    control.attach(processor)
    results = processor.iter_results(start_frame=job.start_frame, end_frame=job.end_frame)
    control.results = results
    batch: list[FrameResult] = []
    last = time.monotonic()
    try:
        for result in results:
            batch.append(result)
            if control.stop_requested:
                processor.stop()  # also covers a stop that came before the run had started
            now = time.monotonic()
            if now - last >= yield_every_s:
                yield batch
                batch, last = [], now
        if batch:
            yield batch
    finally:
        with contextlib.suppress(Exception):
            results.close()  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ GUI side


@dataclass
class VideoContext:
    """Where the current video and its results are, and the frame geometry."""

    video_path: Path
    layout: ResultLayout
    result_folder: str | None
    n_frames: int
    height: int
    width: int

    @property
    def stem(self) -> str:
        return self.video_path.stem


def _meta(layer: Any) -> dict[str, Any]:
    if layer is None:
        return {}
    meta = getattr(layer, "metadata", None) or {}
    got = meta.get(META_KEY, {})
    return got if isinstance(got, dict) else {}


def _frames_of(data: np.ndarray) -> set[int]:
    data = np.asarray(data)
    if data.size == 0:
        return set()
    return {int(t) for t in np.unique(np.round(data.reshape(-1, data.shape[-1])[:, 0]))}


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
        self.worker: Any = None
        self.control: RunControl | None = None
        self.last_summary: dict[str, Any] = {}
        self._run_error: str | None = None

        self.layers_panel = LayersPanel(self._image_choices, self._points_choices, self._labels_choices)
        self.backbone_panel = BackbonePanel()
        self.config_panel = TrackerConfigPanel()
        self.seed_panel = SeedPanel()
        self.track_panel = TrackPanel()
        self.display_panel = DisplayPanel()
        self._build_layout()

        # state of the current points layer and of edits
        self._points: Points | None = None
        self._dirty: set[int] = set()
        self._removing_frames: set[int] = set()
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DEBOUNCE_MS)
        self._save_timer.timeout.connect(self.flush_edits)
        # live updates
        self._pending: list[FrameResult] = []
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self._apply_pending)
        self._refresh_interval_ms = REFRESH_MS
        self._last_refresh = 0.0
        self._last_tracks_refresh = 0.0
        self._tracks_interval_s = TRACKS_REFRESH_S
        self._live_labels: LiveLabels | None = None
        self._label_values: dict[str, int] = {}
        self._run_ctx: VideoContext | None = None
        self._run_t0 = 0.0
        self._frames_done = 0
        self.refresh_stats: dict[str, float] = {"count": 0, "max_ms": 0.0, "total_ms": 0.0}
        # settings
        self._settings_timer = QTimer(self)
        self._settings_timer.setSingleShot(True)
        self._settings_timer.setInterval(500)
        self._settings_timer.timeout.connect(self.save_settings)
        self._suggested_for: set[int] = set()

        from .heatmap import HeatmapController

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
        holder = self._holder = _RunHolder()
        self.destroyed.connect(holder.stop)
        self._on_layers_changed()
        self._on_model_changed()

    # ---------------------------------------------------------------- layout and wiring
    def _build_layout(self) -> None:
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(4, 4, 4, 4)
        inner_layout.setSpacing(2)
        self.collapsibles: dict[str, QCollapsible] = {}
        for title, panel, expanded in (
            ("Layers", self.layers_panel, True),
            ("Backbone", self.backbone_panel, True),
            ("Motion prior & mask", self.config_panel, False),
            ("Seed tools", self.seed_panel, True),
            ("Track", self.track_panel, True),
            ("Display: trajectories & heatmap", self.display_panel, True),
        ):
            box = QCollapsible(title.replace("&", "&&"), inner)  # "&" would be a mnemonic
            box.setDuration(0)
            box.addWidget(panel.native)
            if expanded:
                box.expand(animate=False)
            inner_layout.addWidget(box)
            self.collapsibles[title] = box
        inner_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.setMinimumWidth(360)

    def _connect(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.moved.connect(self._on_layers_changed)
        lp = self.layers_panel
        lp.image.changed.connect(self._on_image_changed)
        lp.points.changed.connect(self._on_points_changed)
        lp.masks.changed.connect(self._on_masks_changed)
        bp = self.backbone_panel
        bp.model.changed.connect(self._on_model_changed)
        bp.folder.changed.connect(self._on_model_changed)
        for w in (bp.model, bp.folder, bp.short_side, bp.device, bp.precision):
            w.changed.connect(self._settings_changed)
        bp.check.clicked.connect(self.load_model_now)
        cp = self.config_panel
        cp.preset.changed.connect(self._on_preset)
        cp.reset.clicked.connect(self.reset_config)
        cp.changed.connect(self._on_config_edited)
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
        dp = self.display_panel
        dp.trajectories.changed.connect(self._on_trajectories_toggled)
        dp.tail_length.changed.connect(self._on_tail_length)
        dp.heatmap.changed.connect(self.heatmap.set_enabled)
        dp.opacity.changed.connect(self.heatmap.set_opacity)
        for w in (dp.trajectories, dp.tail_length, dp.from_seed, dp.opacity):
            w.changed.connect(self._settings_changed)

    # ---------------------------------------------------------------- layer pickers
    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(lyr.name, lyr) for lyr in self.viewer.layers
                if isinstance(lyr, Image) and not _meta(lyr).get("heatmap")]

    def _points_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Points

        return [(lyr.name, lyr) for lyr in self.viewer.layers if isinstance(lyr, Points)]

    def _labels_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Labels

        return [(lyr.name, lyr) for lyr in self.viewer.layers if isinstance(lyr, Labels)]

    def _on_layers_changed(self, *_: Any) -> None:
        lp = self.layers_panel
        lp.reset_choices()
        for combo, choices in ((lp.image, self._image_choices()), (lp.points, self._points_choices()),
                               (lp.masks, self._labels_choices())):
            layers = [lyr for _, lyr in choices]
            if combo.value is None and layers:
                preferred = [lyr for lyr in layers if _meta(lyr)]
                combo.value = (preferred or layers)[-1]
        if self._points is not None and self._points not in self.viewer.layers:
            self._connect_points(None)

    def _on_image_changed(self, layer: Image | None) -> None:
        meta = _meta(layer)
        hints = meta.get("suggest")
        if layer is not None and hints and id(layer) not in self._suggested_for:
            self._suggested_for.add(id(layer))
            if hints.get("model"):
                self.backbone_panel.set_model(str(hints["model"]))
            if hints.get("short_side"):
                self.backbone_panel.short_side.value = int(hints["short_side"])

    def _on_points_changed(self, layer: Points | None) -> None:
        self._connect_points(layer)

    def _connect_points(self, layer: Points | None) -> None:
        if self._points is layer:
            return
        if self._points is not None:
            self.flush_edits()
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                self._points.events.data.disconnect(self._on_points_data)
        self._points = layer
        if layer is not None:
            self._ensure_features(layer)
            layer.events.data.connect(self._on_points_data)
            self._update_feature_defaults()

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

    def _ensure_features(self, layer: Points) -> None:
        feats = layer.features
        missing = [c for c in FEATURE_COLUMNS if c not in feats.columns]
        if not missing:
            return
        defaults = {"instance": self._instance_name(), "keypoint": "point", "visible": True, "score": 1.0,
                    "source": "manual"}
        new = feats.copy()
        for c in missing:
            new[c] = [defaults[c]] * len(new)
        with layer.events.data.blocker(self._on_points_data):
            layer.features = new

    # ---------------------------------------------------------------- video context
    def current_frame(self) -> int:
        """The frame shown by the time slider."""
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def video_context(self) -> VideoContext:
        """Video path, result layout and frame size of the chosen layers; UserError if unknown."""
        from ..io.paths import ResultLayout

        image = self.image_layer
        meta = {**_meta(self.points_layer), **_meta(image)}
        path = meta.get("video_path")
        if not path and image is not None:
            src = getattr(getattr(image, "source", None), "path", None)
            path = str(src) if src else None
        if not path:
            raise UserError("Open a video first (File → Open, or File → Open Sample → DINO Keypoint Tracker), "
                            "and choose it as the video layer.")
        result_folder = meta.get("result_folder")
        video_path = Path(path)
        if result_folder and Path(result_folder) == video_path.parent / video_path.stem:
            result_folder = None
        layout = ResultLayout(video_path, result_folder)
        if image is not None:
            shape = image.data.shape
            n, h, w = int(shape[0]), int(shape[1]), int(shape[2])
        else:
            n, h, w = int(meta.get("n_frames", 0)), int(meta.get("height", 0)), int(meta.get("width", 0))
        return VideoContext(video_path, layout, result_folder, n, h, w)

    # ---------------------------------------------------------------- backbone
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
            f"patch {backbone.patch_size}). {source}")

    def _on_backbone_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        text = str(exc)
        self.backbone_panel.source.value = "⚠ " + text
        show_error(text)

    # ---------------------------------------------------------------- tracker config
    def _on_preset(self, name: str) -> None:
        from ..tracking.config import TrackerConfig

        if name and name != CUSTOM:
            self.config_panel.set_config(TrackerConfig.preset(name))

    def reset_config(self) -> None:
        """Every knob back to its default."""
        from ..tracking.config import TrackerConfig

        self.config_panel.set_config(TrackerConfig())

    def _on_config_edited(self, *_: Any) -> None:
        cp = self.config_panel
        try:
            cp.config()
            cp.error.value = ""
        except ValueError as exc:
            cp.error.value = f"⚠ {exc}"
        match = cp.matching_preset()
        if cp.preset.value != match:
            with cp.preset.changed.blocked():
                cp.preset.value = match
        self._settings_changed()

    # ---------------------------------------------------------------- settings
    def current_settings(self) -> WidgetSettings:
        """The widget's state as a :class:`WidgetSettings`."""
        from ..tracking.config import TrackerConfig

        bp, cp, sp, dp = self.backbone_panel, self.config_panel, self.seed_panel, self.display_panel
        defaults = TrackerConfig().to_dict()
        tracker = {k: v for k, v in cp.values().items() if defaults.get(k) != v}
        return WidgetSettings(
            model=str(bp.model.value), local_folder=str(bp.folder.value or "") if bp.folder.value else "",
            short_side=int(bp.short_side.value), device=str(bp.device.value), precision=str(bp.precision.value),
            preset=str(cp.preset.value), tracker=tracker, keypoint_names=sp.names.value,
            instance_name=sp.instance.value, show_trajectories=bool(dp.trajectories.value),
            tail_length=int(dp.tail_length.value), heatmap_opacity=float(dp.opacity.value),
            heatmap_from_seed=bool(dp.from_seed.value),
        )

    def apply_settings(self, s: WidgetSettings) -> None:
        """Show saved settings in the panels (bad entries are skipped)."""
        from ..tracking.config import TrackerConfig

        bp, cp, sp, dp = self.backbone_panel, self.config_panel, self.seed_panel, self.display_panel
        if s.local_folder and s.local_folder not in (".", ""):
            bp.folder.value = s.local_folder
        with contextlib.suppress(ValueError):
            bp.model.value = s.model
        bp.short_side.value = max(bp.short_side.min, min(bp.short_side.max, s.short_side))
        if s.device in bp.device.choices:
            bp.device.value = s.device
        if s.precision in bp.precision.choices:
            bp.precision.value = s.precision
        known = {f.name for f in fields(TrackerConfig)}
        values = TrackerConfig().to_dict()
        for k, v in s.tracker.items():
            if k in known:
                values[k] = v
        try:
            config = TrackerConfig.from_dict(values)
        except ValueError as exc:
            logger.warning("saved tracker settings ignored: %s", exc)
            config = TrackerConfig()
        cp.set_config(config)
        with cp.preset.changed.blocked():
            cp.preset.value = cp.matching_preset()
        sp.names.value = s.keypoint_names
        sp.instance.value = s.instance_name
        dp.trajectories.value = s.show_trajectories
        dp.tail_length.value = max(1, s.tail_length)
        dp.opacity.value = min(1.0, max(0.0, s.heatmap_opacity))
        dp.from_seed.value = s.heatmap_from_seed
        self.heatmap.set_opacity(dp.opacity.value)
        self._on_names_changed()

    def _settings_changed(self, *_: Any) -> None:
        self._settings_timer.start()

    def save_settings(self) -> Path | None:
        """Write the current settings to the settings file now."""
        self._settings_timer.stop()
        return save_settings(self.current_settings())

    # ---------------------------------------------------------------- seed tools
    def _keypoint_names(self) -> list[str]:
        return parse_names(self.seed_panel.names.value) or ["point"]

    def _instance_name(self) -> str:
        return self.seed_panel.instance.value.strip() or "animal1"

    def _on_names_changed(self, *_: Any) -> None:
        self.keypoints_style.keypoint_names = self._keypoint_names()
        self._update_feature_defaults()
        self._settings_changed()

    def _update_feature_defaults(self) -> None:
        layer = self._points
        if layer is None:
            return
        with contextlib.suppress(Exception):
            layer.feature_defaults = {"instance": self._instance_name(), "keypoint": self._keypoint_names()[0],
                                      "visible": True, "score": 1.0, "source": "manual"}

    def ensure_points_layer(self) -> Points:
        """The keypoints layer, created (empty, styled) if there is none."""
        layer = self.points_layer
        if layer is not None:
            return layer
        try:
            ctx = self.video_context()
            name, meta = f"{ctx.stem} keypoints", {META_KEY: {"video_path": str(ctx.video_path),
                                                            "result_folder": str(ctx.layout.folder)}}
            self.keypoints_style.size = point_size_for(ctx.height, ctx.width)
        except UserError:
            name, meta = "keypoints", {}
        self.keypoints_style.name = name
        kwargs = self.keypoints_style.as_kwargs(None)
        kwargs["feature_defaults"]["instance"] = self._instance_name()
        layer = self.viewer.add_points(np.zeros((0, 3)), ndim=3, features=empty_features(), metadata=meta,
                                       **kwargs)
        self.layers_panel.points.value = layer
        self._connect_points(layer)
        return layer

    def add_instance_keypoints(self) -> list[int]:
        """Place this instance's missing keypoints in a row at the view centre; return the new row indices."""
        layer = self.ensure_points_layer()
        t = self.current_frame()
        inst = self._instance_name()
        names = self._keypoint_names()
        feats = layer.features
        on_frame = np.round(layer.data[:, 0]).astype(int) == t if len(layer.data) else np.zeros(0, bool)
        have = set(feats.loc[on_frame & (feats["instance"].astype(str) == inst).to_numpy(), "keypoint"].astype(str)) \
            if len(feats) else set()
        missing = [n for n in names if n not in have]
        if not missing:
            self.seed_panel.status.value = f"{inst} already has all its keypoints on frame {t}."
            return []
        cy, cx = self._view_centre()
        try:
            ctx = self.video_context()
            spacing = max(6.0, min(ctx.width, ctx.height) / (2.0 * (len(missing) + 1)))
            cy = float(np.clip(cy, 0, ctx.height - 1))
            cx = float(np.clip(cx, 0, ctx.width - 1))
        except UserError:
            spacing = 12.0
        offsets = (np.arange(len(missing)) - (len(missing) - 1) / 2.0) * spacing
        new = np.column_stack([np.full(len(missing), float(t)), np.full(len(missing), cy), cx + offsets])
        new_feats = pd.DataFrame({"instance": pd.Series([inst] * len(missing), dtype=object),
                                  "keypoint": pd.Series(missing, dtype=object),
                                  "visible": pd.Series([True] * len(missing), dtype=bool),
                                  "score": pd.Series([1.0] * len(missing), dtype=float),
                                  "source": pd.Series(["manual"] * len(missing), dtype=object)})
        n0 = len(layer.data)
        self._set_points(layer, np.concatenate([np.asarray(layer.data).reshape(-1, 3), new]),
                         pd.concat([feats[list(FEATURE_COLUMNS)].reset_index(drop=True), new_feats],
                                   ignore_index=True))
        rows = list(range(n0, n0 + len(missing)))
        layer.selected_data = set(rows)
        with contextlib.suppress(Exception):
            layer.mode = "select"
        self._mark_dirty({t})
        self.seed_panel.status.value = (f"Added {', '.join(missing)} for {inst} on frame {t}: drag each onto its "
                                        "body part; edits are saved automatically.")
        return rows

    def _view_centre(self) -> tuple[float, float]:
        centre = np.asarray(self.viewer.camera.center, dtype=float)
        world = np.zeros(self.viewer.dims.ndim)
        world[:] = self.viewer.dims.point
        world[-2:] = centre[-2:]
        image = self.image_layer
        if image is not None:
            data = np.asarray(image.world_to_data(world), dtype=float)
            return float(data[-2]), float(data[-1])
        return float(centre[-2]), float(centre[-1])

    def toggle_selected_visibility(self) -> None:
        """Flip hidden/visible for the selected keypoints (and save their frames)."""
        layer = self.points_layer
        if layer is None or not layer.selected_data:
            self.seed_panel.status.value = "Select keypoints first (select mode, click or drag a box)."
            return
        idx = np.fromiter(sorted(layer.selected_data), int)
        feats = layer.features
        col = feats.columns.get_loc("visible")
        feats.iloc[idx, col] = ~feats["visible"].to_numpy(dtype=bool)[idx]
        self._restyle(layer)
        self._mark_dirty(_frames_of(layer.data[idx]))

    def save_current_frame(self) -> Path | None:
        """Write the current frame's keypoints (and painted masks) as a manual seed; saves pending edits."""
        from napari.utils.notifications import show_error

        t = self.current_frame()
        self._dirty.add(t)
        paths = self.flush_edits(force={t})
        try:
            self.save_painted_masks({t})
        except (OSError, ValueError, UserError) as exc:
            show_error(f"Could not save the masks of frame {t}: {exc}")
        return paths.get(t)

    # ---------------------------------------------------------------- edits
    def _on_points_data(self, event: Any) -> None:
        from napari.layers.base import ActionType

        layer = self._points
        if layer is None:
            return
        action = getattr(event, "action", None)
        indices = np.asarray([i for i in (getattr(event, "data_indices", ()) or ()) if i is not None], dtype=int)
        if action == ActionType.REMOVING:
            self._removing_frames = _frames_of(np.asarray(layer.data)[indices]) if len(indices) else set()
            return
        if action not in (ActionType.ADDED, ActionType.CHANGED, ActionType.REMOVED):
            return
        if action == ActionType.REMOVED:
            frames, self._removing_frames = self._removing_frames, set()
            frames = frames or {self.current_frame()}
        else:
            data = np.asarray(layer.data)
            if action == ActionType.CHANGED and len(indices) == len(data) and len(_frames_of(data)) > 1:
                return  # the whole layer was replaced by a script: not a user correction
            frames = _frames_of(data[indices]) if len(indices) else {self.current_frame()}
            if action == ActionType.ADDED:
                self._name_added_points(layer, indices)
                self._restyle(layer)
        self._mark_dirty(frames)

    def _name_added_points(self, layer: Points, indices: np.ndarray) -> None:
        """A point added by hand gets the next keypoint name its instance lacks on that frame."""
        feats = layer.features
        if not len(indices) or "keypoint" not in feats.columns or "instance" not in feats.columns:
            return
        data = np.asarray(layer.data)
        n = len(data)
        rows = sorted({int(i) % n for i in indices})
        frames = np.round(data[:, 0]).astype(int)
        names = self._keypoint_names()
        col = feats.columns.get_loc("keypoint")
        for i in rows:
            inst = str(feats["instance"].iloc[i])
            same = (frames == frames[i]) & (feats["instance"].astype(str).to_numpy() == inst)
            same[i] = False
            taken = set(feats["keypoint"].astype(str).to_numpy()[same])
            missing = [name for name in names if name not in taken]
            if missing:
                feats.iloc[i, col] = missing[0]
        with contextlib.suppress(Exception):
            layer.text.refresh(layer.features)

    def _mark_dirty(self, frames: set[int]) -> None:
        layer = self._points
        if layer is not None and frames and len(layer.data):
            rows = np.isin(np.round(layer.data[:, 0]).astype(int), list(frames))
            if "source" in layer.features.columns:
                layer.features.loc[rows, "source"] = "manual"
        self._dirty |= set(frames)
        self._save_timer.start()

    def flush_edits(self, force: set[int] | None = None) -> dict[int, Path]:
        """Save every edited frame (plus ``force``) as manual now; return the written files."""
        from napari.utils.notifications import show_error

        from ..io.labelme import AnnotationError, read_frame, write_manual

        self._save_timer.stop()
        frames = sorted(self._dirty | (force or set()))
        self._dirty.clear()
        layer = self._points
        written: dict[int, Path] = {}
        if not frames or layer is None:
            return written
        try:
            ctx = self.video_context()
        except UserError as exc:
            show_error(f"Cannot save the corrections: {exc}")
            return written
        data, feats = np.asarray(layer.data), layer.features
        for t in frames:
            path = ctx.layout.frame_json(t)
            old = None
            if path.exists():
                with contextlib.suppress(AnnotationError, OSError):
                    old = read_frame(path, t)
            ann = points_to_annotation(data, feats, t, ctx.height, ctx.width, template=old,
                                       default_instance=self._instance_name())
            if not any(inst.keypoints for inst in ann.instances) and (old is None or not old.is_manual) \
                    and t not in (force or set()):
                continue  # nothing left on a frame that was never a seed: nothing to save
            try:
                written[t] = write_manual(ctx.layout, ann)
            except (OSError, ValueError) as exc:
                show_error(f"Could not save frame {t}: {exc}")
        if written:
            shown = ", ".join(str(t) for t in list(written)[:8]) + (" …" if len(written) > 8 else "")
            self.seed_panel.status.value = f"Saved frame {shown} as manual."
        return written

    # ---------------------------------------------------------------- layer updates
    def _restyle(self, layer: Points) -> None:
        face, border = self.keypoints_style.colors(layer.features)
        if len(face) == len(layer.data):
            layer.face_color = face
            layer.border_color = border
            layer.refresh()

    def _set_points(self, layer: Points, data: np.ndarray, features: pd.DataFrame) -> None:
        """Replace the layer's rows in place (same layer object) without triggering the edit handler."""
        with layer.events.data.blocker(self._on_points_data):
            layer.data = data
            layer.features = features
            face, border = self.keypoints_style.colors(features)
            if len(face):
                layer.face_color = face
                layer.border_color = border

    def _show_annotations(self, annotations: list[FrameAnnotation]) -> None:
        """Replace the rows of these frames in the keypoints layer (frames the user is editing are kept)."""
        anns = [a for a in annotations if a.frame not in self._dirty]
        if not anns:
            return
        layer = self.ensure_points_layer()
        frames = np.array([a.frame for a in anns])
        new_data, new_feats = annotations_to_points({a.frame: a for a in anns})
        data = np.asarray(layer.data).reshape(-1, 3)
        keep = ~np.isin(np.round(data[:, 0]).astype(int), frames) if len(data) else np.zeros(0, bool)
        old = layer.features
        if len(old) != len(data) or any(c not in old.columns for c in FEATURE_COLUMNS):
            old = empty_features().reindex(range(len(data)))
        feats = pd.concat([old.loc[keep, list(FEATURE_COLUMNS)].reset_index(drop=True), new_feats],
                          ignore_index=True)
        self._set_points(layer, np.concatenate([data[keep], new_data]), feats)

    def _apply_pending(self) -> None:
        """Push the yielded results to the layers (GUI thread, throttled)."""
        results, self._pending = self._pending, []
        if not results:
            return
        t0 = time.perf_counter()
        n_layers = len(self.viewer.layers)
        latest: dict[int, FrameResult] = {}
        for r in results:
            latest[r.frame] = r
        try:
            self._show_annotations([r.annotation for r in latest.values()])
            self._show_masks(list(latest.values()))
            if self.display_panel.trajectories.value and (
                    time.monotonic() - self._last_tracks_refresh >= self._tracks_interval_s or self.worker is None):
                t_tracks = time.perf_counter()
                had_layer = self._tracks_layer() is not None
                self.update_trajectories()
                if had_layer:  # rebuilding long trajectories is costly: do it more rarely then
                    self._tracks_interval_s = max(TRACKS_REFRESH_S, 8 * (time.perf_counter() - t_tracks))
        except Exception as exc:  # a display problem must not kill the run
            logger.exception("live update failed")
            from napari.utils.notifications import show_warning

            show_warning(f"Could not display the latest results: {exc}")
        dt_ms = (time.perf_counter() - t0) * 1000
        self._last_refresh = time.monotonic()
        if len(self.viewer.layers) == n_layers:  # creating a layer is a one-off cost: do not adapt to it
            # refreshing must never take more than ~25 % of the GUI thread's time
            self._refresh_interval_ms = int(min(1000, max(REFRESH_MS, 4 * dt_ms)))
        st = self.refresh_stats
        st["count"] += 1
        st["total_ms"] += dt_ms
        st["max_ms"] = max(st["max_ms"], dt_ms)

    def _show_masks(self, results: list[FrameResult]) -> None:
        with_masks = [r for r in results if r.masks is not None]
        if not with_masks or self._run_ctx is None:
            return
        ctx = self._run_ctx
        live = self._ensure_live_labels(ctx)
        assert live is not None
        for r in with_masks:
            names = [inst.name for inst in r.annotation.instances]
            for n in names:
                if n not in self._label_values:
                    self._label_values[n] = max(self._label_values.values(), default=0) + 1
            live.update(r.frame, masks_to_labels(r.masks, ctx.height, ctx.width,
                                                 [self._label_values[n] for n in names]))
        layer = self.labels_layer
        if layer is not None and self.current_frame() in {r.frame for r in with_masks}:
            layer.refresh()

    def _ensure_live_labels(self, ctx: VideoContext, create: bool = True) -> LiveLabels | None:
        """The masks layer's data as a :class:`LiveLabels` (wrapping what it showed), created if asked."""
        from ..io.masks import MaskStore, lazy_labels

        layer = self.labels_layer
        if layer is not None and isinstance(layer.data, LiveLabels):
            self._live_labels = layer.data
            return layer.data
        store = MaskStore(ctx.layout.masks_dir)
        with contextlib.suppress(OSError, ValueError):
            for i, name in enumerate(store.names()):
                self._label_values.setdefault(name, i + 1)
        shape = (ctx.n_frames, ctx.height, ctx.width)
        if layer is not None and tuple(layer.data.shape) == shape:
            live = LiveLabels(*shape, base=layer.data, dtype=np.uint16)
            layer.data = live  # same layer object: its settings and undo history stay
        elif create:
            base = lazy_labels(store, *shape, dtype=np.uint16)
            live = LiveLabels(*shape, base=base, dtype=np.uint16)
            active = self.viewer.layers.selection.active
            layer = self.viewer.add_labels(live, name=f"{ctx.stem} masks", opacity=0.4,
                                           metadata={META_KEY: {"video_path": str(ctx.video_path)}})
            self.layers_panel.masks.value = layer
            self._keep_points_on_top()
            self._restore_active(active)
        else:
            return None
        self._live_labels = live
        return live

    def _on_masks_changed(self, layer: Labels | None) -> None:
        """A picked masks layer becomes paintable (its frames then also seed the tracker)."""
        if layer is None or isinstance(layer.data, LiveLabels):
            return
        with contextlib.suppress(UserError):
            self._ensure_live_labels(self.video_context(), create=False)

    def save_painted_masks(self, frames: set[int] | None = None) -> list[int]:
        """Write painted mask frames (all, or ``frames``) to the result folder's mask store."""
        from ..io.masks import MaskStore

        live = self._live_labels
        layer = self.labels_layer
        if live is None or layer is None or layer.data is not live:
            return []
        todo = [t for t in live.edited_frames() if frames is None or t in frames]
        if not todo:
            return []
        ctx = self.video_context()
        store = MaskStore(ctx.layout.masks_dir)
        by_value = {v: n for n, v in self._label_values.items()}
        for t in todo:
            image = live.frame(t)
            values = [int(v) for v in np.unique(image) if v]
            names = [by_value.get(v, f"instance{v}") for v in values]
            store.write(t, np.stack([image == v for v in values]) if values else np.zeros((0, *image.shape), bool),
                        names)
        live.clear_edited(todo)
        return todo

    def _keep_points_on_top(self) -> None:
        layer = self.points_layer
        if layer is not None and layer in self.viewer.layers:
            i = self.viewer.layers.index(layer)
            if i != len(self.viewer.layers) - 1:
                self.viewer.layers.move(i, len(self.viewer.layers))

    def _restore_active(self, layer: Any) -> None:
        """Give the selection back to the layer the user was working on (adding a layer selects it)."""
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.selection.active = layer

    def _tracks_layer(self) -> Tracks | None:
        from napari.layers import Tracks

        for lyr in self.viewer.layers:
            if isinstance(lyr, Tracks) and _meta(lyr).get("trajectories"):
                return lyr
        return None

    def update_trajectories(self) -> Tracks | None:
        """Rebuild the trajectories Tracks layer from the keypoints layer."""
        self._last_tracks_refresh = time.monotonic()
        points = self.points_layer
        layer = self._tracks_layer()
        if points is None or not self.display_panel.trajectories.value:
            return layer
        data, feats = points_to_tracks(points.data, points.features)
        if len(data) == 0:
            return layer
        if layer is None:
            style = self.tracks_style
            style.tail_length = int(self.display_panel.tail_length.value)
            style.name = points.name.replace(" keypoints", "") + " trajectories"
            active = self.viewer.layers.selection.active
            layer = self.viewer.add_tracks(data, features=feats, metadata={META_KEY: {"trajectories": True}},
                                           **style.as_kwargs())
            self._keep_points_on_top()
            self._restore_active(active)
        else:
            layer.data = data
            layer.features = feats
            layer.tail_length = int(self.display_panel.tail_length.value)
        return layer

    def _on_trajectories_toggled(self, on: bool) -> None:
        layer = self._tracks_layer()
        if on:
            layer = self.update_trajectories()
            if layer is not None:
                layer.visible = True
        elif layer is not None:
            layer.visible = False

    def _on_tail_length(self, value: int) -> None:
        layer = self._tracks_layer()
        if layer is not None:
            layer.tail_length = int(value)

    # ---------------------------------------------------------------- tracking
    @property
    def is_running(self) -> bool:
        """Whether a tracking run is in progress."""
        return self.worker is not None

    def track_from_here(self) -> Any:
        """Re-track from the current frame (its keypoints are the seed) to the end frame."""
        return self.track(start_frame=self.current_frame())

    def track(self, start_frame: int | None = None) -> Any:
        """Start tracking in a worker thread; returns the worker (None if it could not start).

        ``start_frame=None`` tracks whatever is stale (from every manual frame onwards);
        ``start_frame=t`` re-tracks from frame ``t`` to the end.
        """
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.is_running:
            return self.worker
        try:
            job, ctx = self._prepare_job(start_frame)
        except UserError as exc:
            show_error(str(exc))
            self.track_panel.status.value = f"⚠ {exc}"
            return None
        if self.display_panel.trajectories.value and self._tracks_layer() is None:
            self.update_trajectories()  # creating a layer stalls the GUI once: do it now, not mid-run
        self.control = control = RunControl()
        self._holder.control = control
        self._run_error = None
        self._run_ctx = ctx
        self._run_t0 = time.monotonic()
        self._pending = []
        self._frames_done = 0
        self.refresh_stats = {"count": 0, "max_ms": 0.0, "total_ms": 0.0}
        worker = create_worker(run_tracking, job, control, self.backbones, _ignore_errors=True)
        worker.yielded.connect(self._on_results)
        worker.errored.connect(self._on_track_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_track_finished)
        self.worker = worker
        self.track_panel.set_running(True)
        self.track_panel.progress.value = 0
        where = f"frame {start_frame}" if start_frame is not None else "the seed frames"
        self.track_panel.status.value = f"Loading {job.backbone.model} and tracking from {where} …"
        worker.start()
        return worker

    def _prepare_job(self, start_frame: int | None) -> tuple[TrackJob, VideoContext]:
        from ..io.labelme import AnnotationError, manual_frames

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
        self.flush_edits(force=self._unsaved_current_frame(ctx))
        try:
            self.save_painted_masks()
        except (OSError, ValueError) as exc:
            raise UserError(f"Could not save the painted masks: {exc}") from None
        if start_frame is not None:
            if not (0 <= start_frame < ctx.n_frames):
                raise UserError(f"Frame {start_frame} is outside the video (0–{ctx.n_frames - 1}).")
            if not ctx.layout.frame_json(start_frame).exists():
                raise UserError(f"Frame {start_frame} has no keypoints: add them (Seed tools) or go to a "
                                "labelled frame before 'Track from here'.")
        else:
            try:
                seeds = manual_frames(ctx.layout)
            except AnnotationError as exc:
                raise UserError(str(exc)) from None
            if not seeds:
                raise UserError("No labelled frame yet: add keypoints on a frame (Seed tools), drag them into "
                                "place and click 'Save frame as manual seed'.")
        end = self.track_panel.end
        end_frame = None if end is None else min(end, ctx.n_frames - 1)
        if end_frame is not None and start_frame is not None and end_frame < start_frame:
            raise UserError(f"The end frame ({end_frame}) is before the start frame ({start_frame}).")
        job = TrackJob(str(ctx.video_path), ctx.result_folder, choice, int(self.backbone_panel.short_side.value),
                       config, start_frame, end_frame)
        return job, ctx

    def _unsaved_current_frame(self, ctx: VideoContext) -> set[int]:
        layer = self._points
        t = self.current_frame()
        if layer is None or not len(layer.data) or ctx.layout.frame_json(t).exists():
            return set()
        on_frame = np.round(np.asarray(layer.data)[:, 0]).astype(int) == t
        return {t} if on_frame.any() else set()

    def _on_results(self, batch: list[FrameResult]) -> None:
        self._pending.extend(batch)
        last = batch[-1]
        self._show_progress(last)
        if not self._refresh_timer.isActive():
            since = (time.monotonic() - self._last_refresh) * 1000
            self._refresh_timer.start(int(max(0, self._refresh_interval_ms - since)))

    def _show_progress(self, r: FrameResult) -> None:
        self._frames_done = int(r.frames_done)
        tp = self.track_panel
        total = max(1, int(r.frames_total))
        tp.progress.max = total
        tp.progress.value = min(total, int(r.frames_done))
        fps = float(r.fps or 0.0)
        left = (total - r.frames_done) / fps if fps > 0 else float("nan")
        eta = "" if not np.isfinite(left) else f" · {_hms(left)} left"
        tp.status.value = f"Frame {r.frame}: {r.frames_done}/{total} frames · {fps:.1f} frames/s{eta}"

    def stop(self) -> None:
        """Stop the run after the current frame; what was tracked so far stays on disk."""
        if self.control is not None:
            self.control.request_stop()
            self.track_panel.status.value = "Stopping …"

    def _on_aborted(self) -> None:  # napari's activity dock "cancel" (worker.quit)
        control = self.control
        if control is not None:
            control.request_stop()
            if control.results is not None:
                with contextlib.suppress(Exception):
                    control.results.close()  # type: ignore[union-attr]

    def _on_track_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        exc = getattr(exc, "original", exc)
        from ..backbone.loader import BackboneUnavailableError
        from ..errors import is_input_error

        if isinstance(exc, BackboneUnavailableError):
            self.backbone_panel.source.value = "⚠ " + str(exc)
            msg = str(exc)
        elif is_input_error(exc):
            msg = str(exc)
        else:
            logger.error("tracking failed", exc_info=exc)
            msg = f"Tracking failed: {exc}"
        self._run_error = msg
        self.track_panel.status.value = "⚠ " + msg.splitlines()[0]
        show_error(msg)

    def _on_track_finished(self) -> None:
        from napari.utils.notifications import show_info

        self._refresh_timer.stop()
        self.worker = None
        self._apply_pending()
        self.track_panel.set_running(False)
        if self.display_panel.trajectories.value:
            self.update_trajectories()
        # the masks are all on disk now: serve them from there
        if self._live_labels is not None and self._run_ctx is not None:
            self._live_labels.max_frames = 8
        control, self.control = self.control, None
        if self._run_error is not None:
            self.last_summary = {"error": self._run_error}
            return
        seconds = time.monotonic() - self._run_t0
        stopped = bool(control and control.stop_requested)
        done = self._frames_done
        self.last_summary = {"stopped": stopped, "frames": done, "seconds": seconds,
                             "refresh_max_ms": self.refresh_stats["max_ms"]}
        if done == 0 and not stopped:
            self.track_panel.status.value = "Nothing to track: every frame is up to date."
            show_info("Nothing to track: every frame is up to date (correct a frame or use 'Track from here').")
            return
        word = "Stopped" if stopped else "Done"
        self.track_panel.status.value = f"{word}: {done} frames in {seconds:.1f} s."
        show_info(f"{word}: tracked {done} frames in {seconds:.1f} s.")

    # ---------------------------------------------------------------- heatmap hooks
    def _heatmap_reference(self, frame: int) -> int | None:
        if not self.display_panel.from_seed.value:
            return None
        from ..io.labelme import AnnotationError, manual_frames

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

    # ---------------------------------------------------------------- teardown
    def closeEvent(self, event: Any) -> None:
        """Save settings and pending edits, stop a running job."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop tracking, save pending edits and settings (idempotent)."""
        if self.control is not None:
            self.control.request_stop()
        with contextlib.suppress(Exception):
            self.flush_edits()
        with contextlib.suppress(Exception):
            self.save_settings()
        self.heatmap.set_enabled(False)


class _RunHolder:
    """Holds the current run's control outside the widget, so it can be stopped from ``destroyed``."""

    def __init__(self) -> None:
        self.control: RunControl | None = None

    def stop(self, *_: Any) -> None:
        if self.control is not None:
            self.control.request_stop()


def _hms(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


__all__ += ["UserError", "VideoContext"]
