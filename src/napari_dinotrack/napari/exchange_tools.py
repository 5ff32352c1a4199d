"""What the "Export · import · clean-up · render" panel does, on the dock's video and keypoints layer.

* **Export**: the saved results through :func:`~napari_dinotrack.exchange.export.export_results`
  (pending edits are saved first), optionally cleaned up.
* **Clean-up**: movement's filters on the keypoints layer, shown as a separate, read-only
  ``<keypoints> filtered`` layer beside the raw one; nothing is written.
* **Skeleton**: the edges typed in the panel are stored in the result folder and drawn as line
  vectors on every frame that has both keypoints visible (napari shows the current frame's).
* **Import**: another tool's labels become manual seed frames, shown in the keypoints layer at once.
* **Render**: the overlay video, encoded in a worker thread with a progress bar.

The host is the dock widget; only its public methods are used (``viewer``, ``points_layer``,
``video_context``, ``ensure_points_layer``, ``flush_edits``, ``edits.set_rows``, ``layers_panel``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QTimer

from ..errors import UserError
from .exchange_panel import ExchangePanel
from .viewer_layers import adding_quietly

if TYPE_CHECKING:
    from napari.layers import Points, Vectors

    from ..exchange.seeds import ImportReport
    from .widget import DinoTrackerWidget

__all__ = ["FILTERED_KEY", "SKELETON_KEY", "ExchangeTools", "skeleton_vectors"]

#: metadata keys of the layers this panel adds (not the plugin's key, so the dock never edits them)
FILTERED_KEY = "dinotrack_filtered"
SKELETON_KEY = "dinotrack_skeleton"
#: size (relative to the raw points) and opacity of the filtered keypoints
FILTERED_SIZE = 1.8
FILTERED_OPACITY = 0.6
#: the skeleton is redrawn this long after the keypoints last changed
REDRAW_MS = 300


def skeleton_vectors(data: np.ndarray, features: pd.DataFrame, edges: list[tuple[str, str]]) -> np.ndarray:
    """Skeleton lines as napari Vectors ``(M, 2, 3)``: start ``(t, y, x)`` and step ``(0, dy, dx)``.

    One vector per frame, animal and edge whose two keypoints are visible on that frame.
    """
    data = np.asarray(data, dtype=float).reshape(-1, 3)
    if not len(data) or not edges or "keypoint" not in features:
        return np.zeros((0, 2, 3))
    table = pd.DataFrame(
        {
            "t": np.round(data[:, 0]),
            "y": data[:, 1],
            "x": data[:, 2],
            "instance": features["instance"].astype(str).to_numpy() if "instance" in features else "",
            "keypoint": features["keypoint"].astype(str).to_numpy(),
        }
    )
    if "visible" in features:
        table = table[features["visible"].to_numpy(dtype=bool)]
    parts = []
    for a, b in edges:
        pair = table[table.keypoint == a].merge(table[table.keypoint == b], on=["t", "instance"])
        start = pair[["t", "y_x", "x_x"]].to_numpy()
        step = np.column_stack([np.zeros(len(pair)), pair.y_y - pair.y_x, pair.x_y - pair.x_x])
        parts.append(np.stack([start, step], axis=1))
    return np.concatenate(parts) if parts else np.zeros((0, 2, 3))


class ExchangeTools:
    """The panel's buttons, acting on the dock's current video and keypoints layer."""

    def __init__(self, host: DinoTrackerWidget) -> None:
        self.host = host
        self.panel = ExchangePanel()
        self.render_worker: Any = None
        self._watched: Points | None = None
        self._redraw = QTimer(host)  # dies with the dock, so it never fires on deleted widgets
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.draw_skeleton)
        p = self.panel
        p.export.clicked.connect(lambda: self.export())
        p.show_filtered.clicked.connect(lambda: self.show_filtered())
        p.save_skeleton.clicked.connect(lambda: self.save_skeleton())
        p.import_labels.clicked.connect(lambda: self.import_labels())
        p.render.clicked.connect(lambda: self.render())
        host.layers_panel.points.changed.connect(self._watch)

    # ---------------------------------------------------------------- helpers
    def _report(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.panel.set_status(f"⚠ {exc}")
        show_error(str(exc))

    def _points(self) -> Points:
        layer = self.host.points_layer
        if layer is None or not len(layer.data):
            raise UserError("There are no keypoints yet: track the video or label a frame first.")
        return layer

    # ---------------------------------------------------------------- export
    def export(self) -> list[Path]:
        """Export the saved results in the chosen format; returns the files written (none on error)."""
        from ..exchange.export import default_output, export_results

        try:
            ctx = self.host.video_context()
            self.host.flush_edits()
            to, suffix = str(self.panel.format.value).split(":")
            out = self.panel.output_path() or default_output(ctx.layout, to, suffix)
            cleanup = self.panel.cleanup_settings() if self.panel.apply_cleanup.value else None
            files = export_results(
                ctx.layout.folder,
                to,
                out,
                individuals=str(self.panel.individuals.value),
                cleanup=cleanup,
                video=ctx.video_path,
            )
        except UserError as exc:
            self._report(exc)
            return []
        self.panel.set_status("Wrote " + ", ".join(str(f) for f in files))
        return files

    # ---------------------------------------------------------------- clean-up
    def filtered_layer(self) -> Points | None:
        """The filtered keypoints layer, if shown."""
        return next((lyr for lyr in self.host.viewer.layers if FILTERED_KEY in lyr.metadata), None)

    def show_filtered(self) -> Points | None:
        """Add (or refresh) the read-only filtered layer from the keypoints layer and the clean-up settings."""
        from ..exchange.cleanup import clean
        from ..exchange.dataset import dataset_rows, points_dataset, rows_annotations
        from .layer_styles import keypoints_layer_data

        try:
            raw = self._points()
            settings = self.panel.cleanup_settings()
            ctx = self.host.video_context()
            ds = clean(points_dataset(raw.data, raw.features, n_frames=ctx.n_frames or None), settings)
            anns = rows_annotations(dataset_rows(ds), ctx.height, ctx.width, source="prediction")
        except UserError as exc:
            self._report(exc)
            return None
        data, kwargs, _ = keypoints_layer_data(
            {a.frame: a for a in anns}, f"{raw.name} filtered", {FILTERED_KEY: {"cleanup": settings.summary()}}
        )
        layer = self.filtered_layer()
        kwargs.pop("text", None)  # the raw layer names the keypoints already
        if layer is None:
            # a larger translucent diamond under each raw dot: where the filter moved a point, it shows
            size = FILTERED_SIZE * (float(np.median(raw.size)) if len(raw.size) else kwargs["size"])
            kwargs.update(symbol="diamond", size=size, opacity=FILTERED_OPACITY)
            with adding_quietly(self.host.viewer, lambda: self.host.points_layer):
                layer = self.host.viewer.add_points(data, **kwargs)
            layers = self.host.viewer.layers
            layers.move(layers.index(layer), layers.index(raw))  # just below the raw keypoints
        else:
            layer.data = data
            layer.features = kwargs["features"]
            layer.face_color, layer.border_color = kwargs["face_color"], kwargs["border_color"]
            layer.metadata = kwargs["metadata"]
        layer.editable = False
        self.panel.set_status(f"Filtered layer: {settings.summary()} ({len(data)} points)")
        return layer

    # ---------------------------------------------------------------- skeleton
    def _watch(self, layer: Points | None) -> None:
        """Follow the keypoints layer: redraw the skeleton when its points change, load the stored skeleton."""
        if self._watched is not None:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                self._watched.events.data.disconnect(self._schedule_redraw)
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._schedule_redraw)
        if not self.panel.skeleton.value:
            self.load_skeleton()

    def _schedule_redraw(self, *_: Any) -> None:
        self._redraw.start()

    def load_skeleton(self) -> None:
        """Show the result folder's stored skeleton in the panel (and draw it)."""
        from ..exchange.skeleton import format_edges, read_skeleton

        try:
            edges = read_skeleton(self.host.video_context().layout)
        except UserError:
            return
        if edges:
            self.panel.skeleton.value = format_edges(edges)
            self.draw_skeleton()

    def _edges(self) -> list[tuple[str, str]]:
        from ..exchange.skeleton import parse_edges

        layer = self.host.points_layer
        known = None
        if layer is not None and "keypoint" in layer.features:
            known = list(dict.fromkeys(layer.features["keypoint"].astype(str)))
        return parse_edges(str(self.panel.skeleton.value), known, where="skeleton")

    def save_skeleton(self) -> Path | None:
        """Store the typed skeleton in the result folder and draw it; returns the file."""
        from ..exchange.skeleton import check_edges, write_skeleton

        try:
            edges = self._edges()
            layer = self.host.points_layer
            if layer is not None and "keypoint" in layer.features:
                check_edges(edges, list(dict.fromkeys(layer.features["keypoint"].astype(str))), "skeleton")
            path = write_skeleton(self.host.video_context().layout, edges)
        except UserError as exc:
            self._report(exc)
            return None
        self.draw_skeleton()
        self.panel.set_status(f"Skeleton of {len(edges)} edges saved in {path}")
        return path

    def skeleton_layer(self) -> Vectors | None:
        """The skeleton Vectors layer, if drawn."""
        return next((lyr for lyr in self.host.viewer.layers if SKELETON_KEY in lyr.metadata), None)

    def draw_skeleton(self) -> Vectors | None:
        """Draw the panel's skeleton from the keypoints layer (every frame; napari shows the current one)."""
        layer = self.host.points_layer
        try:
            edges = self._edges()
        except UserError:
            return self.skeleton_layer()
        vectors = np.zeros((0, 2, 3)) if layer is None else skeleton_vectors(layer.data, layer.features, edges)
        lines = self.skeleton_layer()
        if lines is None and len(vectors):
            assert layer is not None  # the vectors were drawn from it
            with adding_quietly(self.host.viewer, lambda: self.host.points_layer):
                lines = self.host.viewer.add_vectors(
                    vectors,
                    name="skeleton",
                    edge_width=max(1.0, float(np.median(layer.size)) / 6),
                    edge_color="#f0f0f0",
                    vector_style="line",
                    opacity=0.9,
                    metadata={SKELETON_KEY: True},
                )
        elif lines is not None:
            lines.data = vectors
        return lines

    # ---------------------------------------------------------------- import
    def import_labels(self) -> ImportReport | None:
        """Write the chosen label file as manual seed frames and show them in the keypoints layer."""
        from ..exchange.seeds import import_seeds
        from ..io.labelme import read_frame
        from .convert import replace_frames

        chosen = self.panel.labels_path()
        try:
            if chosen is None:
                raise UserError("Choose a label file first (DeepLabCut, SLEAP or COCO).")
            ctx = self.host.video_context()
            self.host.flush_edits()
            report = import_seeds(
                chosen,
                ctx.video_path,
                result_folder=ctx.result_folder,
                overwrite=bool(self.panel.replace.value),
                new_keypoints=bool(self.panel.new_keypoints.value),
            )
        except UserError as exc:
            self._report(exc)
            return None
        anns = [read_frame(path, frame) for frame, path in zip(report.frames, report.files, strict=True)]
        layer = self.host.ensure_points_layer()
        self.host.edits.set_rows(layer, *replace_frames(layer.data, layer.features, anns))
        if report.skeleton is not None:
            self.load_skeleton()
        self.panel.set_status(
            f"Imported {len(report.frames)} seed frame(s) from {chosen.name}: {', '.join(map(str, report.frames[:12]))}"
        )
        return report

    # ---------------------------------------------------------------- render
    def render(self) -> Any:
        """Render the overlay video in a worker thread; returns the worker (None if it could not start)."""
        from napari.qt.threading import create_worker

        from ..exchange.render import iter_render
        from ..exchange.settings import RenderSettings

        if self.render_worker is not None:
            return self.render_worker
        try:
            ctx = self.host.video_context()
            self.host.flush_edits()
            settings = RenderSettings(trail=int(self.panel.trail.value))
        except UserError as exc:
            self._report(exc)
            return None
        worker = create_worker(
            iter_render,
            ctx.layout.folder,
            settings=settings,
            video=ctx.video_path,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.yielded.connect(self._render_progress)
        worker.returned.connect(lambda path: self.panel.set_status(f"Wrote {path}"))
        worker.errored.connect(self._report)
        worker.finished.connect(self._render_done)
        self.panel.render.enabled = False
        self.panel.set_status("Rendering …")
        self.render_worker = worker
        worker.start()
        return worker

    def _render_progress(self, step: tuple[int, int]) -> None:
        done, total = step
        self.panel.progress.max = max(1, total)
        self.panel.progress.value = done

    def _render_done(self) -> None:
        self.render_worker = None
        self.panel.render.enabled = True
