"""DinoKeypointVideoProcessor: decode thread -> backbone a batch ahead -> tracker -> writer thread.

The run plan (:mod:`.runplan`) decides which frames need tracking from the result folder alone,
so the same call resumes after a crash, re-tracks after a correction and does nothing when all
results are current. Frames are decoded ahead on a background thread and go through the backbone
in batches of ``TrackerConfig.batch_size`` at one working resolution on a worker thread, a batch
ahead of the tracking (:mod:`.lookahead`); the tracking loop takes them frame by frame on the
backbone's device and hands each result to a background writer. ``profile=`` records where the
time goes (:mod:`.profiling`).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .backbone.base import Backbone, WorkGeometry, compute_geometry
from .backbone.catalog import DEFAULT_MODEL
from .errors import InputError
from .io.annotations import FrameAnnotation, Instance, Keypoint
from .io.atomic import remove_stale_temp_files
from .io.folder_lock import FolderLock
from .io.labelme import load_annotations, no_keypoints_reason
from .io.mask_store import MaskStore, polygon_to_mask
from .io.paths import ResultLayout
from .io.results import ResultWriter
from .io.table_index import TracksTable, VideoRecord, check_folder_belongs
from .io.video import VideoReader, probe_video
from .lookahead import FeaturesAhead, TrackingThreads
from .profiling import NO_PROFILE, RunProfile, recording
from .proofreading.suspicious import DISAGREEMENT_KEY
from .runplan import RunPlan, Stretch, plan_run
from .runsettings import Direction, RunSettings
from .tracking.config import TrackerConfig
from .tracking.keypoints.tracker import KeypointTracker, TrackOutput
from .tracking.masks import MaskPropagator, make_propagator
from .tracking.twoway import merge_passes

__all__ = ["DEFAULT_MODEL", "DinoKeypointVideoProcessor", "FrameResult", "RunSummary"]

OUTLINE_AGREEMENT_IOU = 0.8  # a saved outline this close to the stored mask is a simplified copy of it


@dataclass
class FrameResult:
    """One frame's outcome, yielded as soon as it is known (its files follow on the writer thread)."""

    frame: int
    annotation: FrameAnnotation  # native video pixels; source "manual" for seed frames
    masks: np.ndarray | None  # (I, H, W) bool in the annotation's instance order, or None
    reseeded: bool  # True when this frame (re)started tracking: the first frame or a manual frame
    frames_done: int
    frames_total: int
    fps: float  # tracked frames per second so far in this run
    provisional: bool = False  # a backward pass's result, merged with the forward pass before it is written
    frames_written: int = 0  # predictions written so far in this run (frames_done counts tracker steps)


@dataclass
class RunSummary:
    """What a finished (or stopped) run did."""

    first_frame: int | None  # the lowest frame the run started from or wrote
    last_frame: int | None  # the highest
    frames_tracked: int  # frames written
    stopped: bool
    seconds: float
    profile: RunProfile | None = None  # where the time went, when the run was profiled

    @property
    def fps(self) -> float:
        return self.frames_tracked / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[int, int], None]


class DinoKeypointVideoProcessor:
    """Track every labelled keypoint of a video from its manual frames.

    ``direction="both"`` (default) tracks the frames between two manual frames from both ends and
    merges the passes (so nothing jumps at the later one), and the frames before the first manual
    frame backward from it; ``"forward"`` tracks forward from each manual frame only.

    ``model_name`` is a catalog name, a Hugging Face id, a local ``save_pretrained`` folder, a
    registered scheme such as ``"pixel:"``, or a ready :class:`~.backbone.base.Backbone` object.
    Results go to ``result_folder`` (default ``<video dir>/<video stem>/``). ``precision``:
    ``"auto"`` (bf16 on GPUs and on CPUs with native bf16), ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    ``threads``: torch CPU threads of the backbone (default: all cores but the tracking loop's).
    ``compile_backbone``: run a loaded transformers model through ``torch.compile``.
    """

    def __init__(
        self,
        video_path: str | os.PathLike[str],
        result_folder: str | os.PathLike[str] | None = None,
        model_name: str | os.PathLike[str] | Backbone = DEFAULT_MODEL,
        short_side: int = 768,
        device: str | None = None,
        runtime_config: TrackerConfig | None = None,
        progress_callback: ProgressCallback | None = None,
        precision: str = "auto",
        threads: int | None = None,
        compile_backbone: bool = False,
        direction: Direction = "both",
    ) -> None:
        self.video_path = Path(video_path)
        self.info = probe_video(self.video_path)
        self.layout = ResultLayout(self.video_path, result_folder)
        self.video_record = VideoRecord.of(self.video_path, self.info.n_frames, self.info.width, self.info.height)
        check_folder_belongs(self.layout, self.video_record)
        self.config = runtime_config if runtime_config is not None else TrackerConfig()
        run = RunSettings(short_side=int(short_side), direction=direction)  # checked where the defaults live
        self.short_side = run.short_side
        self.direction: Direction = run.direction
        self.device = device
        self.precision = precision
        if threads is not None and threads < 1:
            raise InputError(f"threads must be 1 or more, got {threads}")
        self.threads = threads
        self.compile_backbone = compile_backbone
        self.model_name = model_name
        self.progress_callback = progress_callback
        self._backbone: Backbone | None = None if isinstance(model_name, str | os.PathLike) else model_name
        self._stop = threading.Event()
        self.last_run_stopped = False

    # ------------------------------------------------------------------ public API
    @property
    def backbone(self) -> Backbone:
        """The feature extractor, loaded on first use."""
        if self._backbone is None:
            from .backbone.loader import load_backbone

            self._backbone = load_backbone(self.model_name, device=self.device, precision=self.precision)
            if self.compile_backbone and hasattr(self._backbone, "compile"):
                self._backbone.compile()
        return self._backbone

    def stop(self) -> None:
        """Ask a running ``iter_results``/``process_video`` to finish after the current frame (thread-safe)."""
        self._stop.set()

    def sync_results(self) -> None:
        """Make the result folder's table equal to its JSONs now (as every run does when it starts)."""
        if self.layout.folder.is_dir():
            with FolderLock(self.layout.folder):
                self._tidy_folder()

    def plan(self, start_frame: int | None = None, end_frame: int | None = None) -> RunPlan | None:
        """The frames a run would track now (None: everything is current)."""
        return plan_run(
            self._load_annotations(),
            self.info.n_frames,
            start_frame,
            end_frame,
            where=str(self.layout.folder),
            direction=self.direction,
        )

    def process_video(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        profile: bool | str | os.PathLike[str] | RunProfile | None = None,
    ) -> RunSummary:
        """Track and write every stale frame (or ``start_frame``..``end_frame``); returns a summary.

        ``profile``: True (or a :class:`~.profiling.RunProfile`) records where the time goes into
        ``RunSummary.profile``; a file path also saves it there as JSON.
        """
        prof = profile if isinstance(profile, RunProfile) else RunProfile() if profile else None
        start = time.perf_counter()
        first = last = None
        tracked = 0
        for result in self.iter_results(start_frame, end_frame, profile=prof):
            if result.provisional:
                continue
            first = result.frame if first is None else min(first, result.frame)
            last = result.frame if last is None else max(last, result.frame)
            tracked += not result.reseeded
        summary = RunSummary(first, last, tracked, self.last_run_stopped, time.perf_counter() - start, prof)
        if prof is not None and isinstance(profile, str | os.PathLike):
            prof.save(profile)
        return summary

    def iter_results(
        self, start_frame: int | None = None, end_frame: int | None = None, profile: RunProfile | None = None
    ) -> Generator[FrameResult, None, None]:
        """Track and yield each frame's result as it is produced; outputs are written as it goes.

        The first result is the frame tracking starts from (``reseeded=True``). Closing the
        iterator early, or ``stop()``, ends the run with everything produced so far on disk.
        """
        # one run per folder; a folder that does not exist yet has no seed, and the run says so
        lock = FolderLock(self.layout.folder)
        try:
            if self.layout.folder.is_dir():
                lock.acquire()
                self._tidy_folder()
            yield from self._run(start_frame, end_frame, profile)
        finally:
            lock.release()
            # a stop() asked for before the first frame still counts; the flag resets for the next run
            self.last_run_stopped = self._stop.is_set()
            self._stop.clear()

    def _run(self, start_frame: int | None, end_frame: int | None, profile: RunProfile | None) -> Iterator[FrameResult]:
        annotations = self._load_annotations()
        plan = plan_run(
            annotations,
            self.info.n_frames,
            start_frame,
            end_frame,
            where=str(self.layout.folder),
            direction=self.direction,
        )
        if plan is None:
            return
        self._check_seeds(annotations, plan)
        backbone = self.backbone
        geometry = compute_geometry(self.info.height, self.info.width, self.short_side, backbone.patch_size)
        tracker = KeypointTracker(self.config, geometry, backbone.device)
        extract = _extractor(backbone, self.config.batch_size)
        prof = profile if profile is not None else NO_PROFILE
        with VideoReader(self.video_path) as reader:
            self._learn_templates(tracker, reader, extract, geometry, plan, annotations)
            self.layout.ensure_folder()
            self.config.save(self.layout.config_json)
            setup = {
                "model": backbone.name,
                "device": str(backbone.device),
                "batch_size": self.config.batch_size,
                "dtype": str(getattr(backbone, "dtype", "float32")).removeprefix("torch."),
                "short_side": self.short_side,
                "video": [self.info.width, self.info.height],
            }
            with (
                prof.running(plan.init_frame, plan.last, **setup),
                ResultWriter(self.layout, plan.first, plan.last, profile=profile) as writer,
            ):
                yield from self._track(
                    plan, annotations, reader, extract, backbone.device, geometry, tracker, writer, prof
                )

    # ------------------------------------------------------------------ the loop
    def _track(
        self,
        plan: RunPlan,
        annotations: dict[int, FrameAnnotation],
        reader: VideoReader,
        extract: Callable[..., torch.Tensor],
        device: torch.device,
        geometry: WorkGeometry,
        tracker: KeypointTracker,
        writer: ResultWriter,
        prof: RunProfile,
    ) -> Iterator[FrameResult]:
        """Track the plan's stretches in order: backward from a later seed first, then forward, merged."""
        run = _RunState(plan.n_steps)
        chunk = max(2 * self.config.batch_size, 16)
        for stretch in plan.stretches:
            passes = _Passes(stretch, annotations)
            for direction, seed_frame, frames in _pass_frames(stretch, reader, chunk):
                yield from self._pass(
                    frames,
                    seed_frame,
                    passes,
                    direction,
                    annotations,
                    extract,
                    device,
                    geometry,
                    tracker,
                    writer,
                    run,
                    prof,
                )
                if self._stop.is_set():
                    return  # a two-way stretch stopped in its backward pass has written nothing: it stays stale

    def _pass(
        self,
        frames: Iterator[tuple[int, np.ndarray]],
        seed_frame: int,
        passes: _Passes,
        direction: str,
        annotations: dict[int, FrameAnnotation],
        extract: Callable[..., torch.Tensor],
        device: torch.device,
        geometry: WorkGeometry,
        tracker: KeypointTracker,
        writer: ResultWriter,
        run: _RunState,
        prof: RunProfile,
    ) -> Iterator[FrameResult]:
        """One pass over ``frames`` from ``seed_frame``, batch after batch while the next is on the worker thread."""
        threads = TrackingThreads(device)
        with FeaturesAhead(
            frames, extract, geometry, self.config.batch_size, device, prof, threads=self.threads
        ) as ahead:
            batches = iter(ahead)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    return
                prof.add("wait_features", batch.frames[0], time.perf_counter() - t0)
                for k, idx in enumerate(batch.frames):
                    if self._stop.is_set():
                        return
                    with threads:
                        if idx == seed_frame:
                            result = self._start_pass(
                                idx,
                                batch.images[k],
                                batch.grays[k],
                                batch.features[k],
                                annotations,
                                geometry,
                                tracker,
                                writer,
                                run,
                            )
                        else:
                            result = self._frame(
                                idx,
                                batch.images[k],
                                batch.grays[k],
                                batch.features[k],
                                passes,
                                direction,
                                tracker,
                                writer,
                                run,
                                prof,
                            )
                    t1 = time.perf_counter()
                    prof.add("loop", idx, t1 - t0)
                    if result is not None:
                        yield result
                    t0 = time.perf_counter()
                    prof.add("consumer", idx, t0 - t1)

    def _start_pass(
        self,
        idx: int,
        img: np.ndarray,
        gray: np.ndarray,
        feats: torch.Tensor,
        annotations: dict[int, FrameAnnotation],
        geometry: WorkGeometry,
        tracker: KeypointTracker,
        writer: ResultWriter,
        run: _RunState,
    ) -> FrameResult | None:
        """(Re)start the tracker from the keypoints (and masks) on a pass's first frame."""
        here = annotations[idx]
        tracker.start(here, feats, gray, img)
        run.seed = here
        masks = self._seed_masks(here)
        run.propagator = self._start_propagator(feats, masks, geometry, img)
        if idx in run.seeds_shown:  # a manual frame ends one stretch and starts the next: shown once
            return None
        run.seeds_shown.add(idx)
        if masks is not None:
            writer.put(here, masks, write_json=False, write_rows=False)
        return FrameResult(idx, here, masks, True, run.done, run.total, run.fps, frames_written=run.written)

    def _frame(
        self,
        idx: int,
        img: np.ndarray,
        gray: np.ndarray,
        feats: torch.Tensor,
        passes: _Passes,
        direction: str,
        tracker: KeypointTracker,
        writer: ResultWriter,
        run: _RunState,
        prof: RunProfile,
    ) -> FrameResult:
        t0 = time.perf_counter()
        masks_t = run.propagator.step(feats, img) if run.propagator is not None else None
        t1, cpu1 = time.perf_counter(), time.thread_time()
        with recording(prof, (idx,)):
            out = tracker.step(feats, gray, masks_t, image=img)
        t2, cpu2 = time.perf_counter(), time.thread_time()
        # on a GPU the tracker's own host transfer has already waited for the masks: this copy does not stall
        masks = masks_t.cpu().numpy() if masks_t is not None else None
        if direction == "backward" and passes.stretch.two_way:
            # the forward pass merges it and writes the frame; shown meanwhile so the user sees progress
            passes.keep_backward(idx, out, run.seed)
            ann = passes.prediction(run.seed, idx, out, provisional=True)
            run.count_frame(self.progress_callback)
            return FrameResult(
                idx, ann, masks, False, run.done, run.total, run.fps, provisional=True, frames_written=run.written
            )
        apart = None
        if direction == "forward" and passes.stretch.two_way:
            out, apart = passes.merge(out, idx, run.seed)
        ann = passes.prediction(run.seed, idx, out, apart=apart)
        ann.model, ann.short_side = self.backbone.name, self.short_side  # results of another model can be told apart
        t3 = time.perf_counter()
        writer.put(ann, masks)
        t4 = time.perf_counter()
        run.count_frame(self.progress_callback)
        run.written += 1
        result = FrameResult(idx, ann, masks, False, run.done, run.total, run.fps, frames_written=run.written)
        prof.add("mask_propagation", idx, t1 - t0)
        prof.add("tracker_step", idx, t2 - t1)
        prof.add("tracker_step_cpu", idx, cpu2 - cpu1)
        prof.add("results", idx, t3 - t2 + time.perf_counter() - t4)
        prof.add("wait_writer", idx, t4 - t3)
        return result

    # ------------------------------------------------------------------ helpers
    def _load_annotations(self) -> dict[int, FrameAnnotation]:
        return load_annotations(self.layout) if self.layout.folder.is_dir() else {}

    def _tidy_folder(self) -> None:
        """What a killed run may have left: its temporary files, and a table behind the JSONs."""
        remove_stale_temp_files(self.layout.folder, self.layout.writes)
        if self.layout.masks_dir.is_dir() and not self.layout.masks_dir.is_symlink():
            remove_stale_temp_files(self.layout.masks_dir, MaskStore.writes)
        TracksTable(self.layout, self.video_record).sync()

    def _check_seeds(self, annotations: dict[int, FrameAnnotation], plan: RunPlan) -> None:
        size = (self.info.height, self.info.width)
        starts = {f for s in plan.stretches for f in (s.start, s.end) if f is not None}
        for f in sorted(starts | set(plan.manual)):
            ann = annotations[f]
            if ann.is_manual and not any(inst.keypoints for inst in ann.instances):
                raise InputError(f"{self.layout.frame_json(f)}: {no_keypoints_reason(ann)}")
            if (ann.image_height, ann.image_width) != size:
                raise InputError(
                    f"{self.layout.frame_json(f)}: labelled for a {ann.image_width}x{ann.image_height} image, "
                    f"but {self.video_path.name} is {self.info.width}x{self.info.height}. Label this video's "
                    "frames (or fix imageWidth/imageHeight if the coordinates are right)."
                )

    def _learn_templates(
        self,
        tracker: KeypointTracker,
        reader: VideoReader,
        extract: Callable[..., torch.Tensor],
        geometry: WorkGeometry,
        plan: RunPlan,
        annotations: dict[int, FrameAnnotation],
    ) -> None:
        """Appearance of every keypoint on the manual frames nearest to the start, in batches."""
        nearest = sorted(plan.manual, key=lambda f: (abs(f - plan.init_frame), f))[: self.config.max_templates]
        others = [f for f in nearest if f != plan.init_frame]
        for i in range(0, len(others), self.config.batch_size):
            chunk = others[i : i + self.config.batch_size]
            feats = extract(np.stack([reader.get_frame(f) for f in chunk]), geometry)
            for f, feat in zip(chunk, feats, strict=True):
                tracker.add_templates(feat, annotations[f])

    def _seed_masks(self, ann: FrameAnnotation) -> np.ndarray | None:
        """(I, H, W) masks of a seed frame.

        The mask store holds the pixel-exact masks painted (or accepted) for the frame; the JSON
        outline is a simplified copy of them. The outline wins only where it disagrees, i.e.
        where someone edited it in another tool after the masks were saved.
        """
        h, w = self.info.height, self.info.width
        stored = None
        if self.layout.masks_dir.is_dir():
            stored = MaskStore(self.layout.masks_dir).read_masks(ann.frame, [i.name for i in ann.instances])
        masks = np.zeros((len(ann.instances), h, w), bool)
        for k, inst in enumerate(ann.instances):
            outline = None
            if inst.mask is not None:
                outline = np.asarray(inst.mask, bool)
            elif inst.polygon is not None and len(inst.polygon) >= 3:
                outline = polygon_to_mask(inst.polygon, h, w)
            painted = stored[k] if stored is not None and stored[k].any() else None
            if painted is not None and (outline is None or _iou(outline, painted) >= OUTLINE_AGREEMENT_IOU):
                masks[k] = painted
            elif outline is not None:
                masks[k] = outline
        return masks if masks.any() else None

    def _start_propagator(
        self, feats: torch.Tensor, masks: np.ndarray | None, geometry: WorkGeometry, img: np.ndarray
    ) -> MaskPropagator | None:
        if masks is None:
            return None
        propagator = make_propagator(
            self.config.mask_propagation, max_fallback_frames=self.config.max_mask_fallback_frames
        )
        if propagator is not None:
            propagator.reset(feats, torch.from_numpy(masks).to(feats.device), geometry, img)
        return propagator


class _RunState:
    """Counters and the current seed of one run."""

    def __init__(self, total: int):
        self.total = total
        self.done = 0
        self.written = 0
        self.started = time.perf_counter()
        self.seed: FrameAnnotation
        self.propagator: MaskPropagator | None = None
        self.seeds_shown: set[int] = set()

    @property
    def fps(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def count_frame(self, callback: ProgressCallback | None) -> None:
        self.done += 1
        if callback is not None:
            callback(self.done, self.total)


def _extractor(backbone: Backbone, batch_size: int) -> Callable[..., torch.Tensor]:
    """``backbone.extract``, told the run's batch size when it takes one (a transformers backbone does)."""
    try:
        takes_batch_size = "batch_size" in inspect.signature(backbone.extract).parameters
    except (TypeError, ValueError):  # no signature to read (a C extension): call it as the protocol says
        takes_batch_size = False
    # the protocol's extract has no batch_size: widen the type so the checked-at-runtime keyword passes
    extract: Callable[..., torch.Tensor] = backbone.extract
    return functools.partial(extract, batch_size=batch_size) if takes_batch_size else extract


def _aligned(
    out: TrackOutput, keys: list[tuple[str, str]], wanted: list[tuple[str, str]], like: TrackOutput
) -> TrackOutput:
    """``out`` (in ``keys`` order) in ``wanted`` order: the two seeds of a stretch may label different
    keypoints; one the other seed lacks counts as unseen by that pass."""
    if keys == wanted:
        return out
    where = {k: i for i, k in enumerate(keys)}
    rows = np.array([where.get(k, -1) for k in wanted])
    found = rows >= 0
    take = np.where(found, rows, 0)
    xy = np.where(found[:, None], out.xy[take], like.xy).astype(np.float32)
    return TrackOutput(xy, np.where(found, out.visible[take], False), np.where(found, out.score[take], 0.0))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _pass_frames(
    stretch: Stretch, reader: VideoReader, chunk: int
) -> list[tuple[str, int, Iterator[tuple[int, np.ndarray]]]]:
    """A stretch's passes in the order they run: backward from its later seed first, then forward.

    Each is ``(direction, seed frame, frames from the seed on)``; the frames are decoded only when read.
    """
    passes = []
    if stretch.end is not None:
        passes.append(("backward", stretch.end, reader.iter_frames_reversed(stretch.first, stretch.end + 1, chunk)))
    if stretch.start is not None:
        passes.append(("forward", stretch.start, reader.iter_frames(stretch.start, stretch.last + 1, prefetch=chunk)))
    return passes


class _Passes:
    """A stretch's seeds (recorded with each prediction) and its backward pass, kept for the merge."""

    def __init__(self, stretch: Stretch, annotations: dict[int, FrameAnnotation]):
        self.stretch = stretch
        fwd, bwd = stretch.forward_seed, stretch.backward_seed
        self.lineage = (
            fwd,
            annotations[fwd].digest() if fwd is not None else None,
            bwd,
            annotations[bwd].digest() if bwd is not None else None,
        )
        self.backward: dict[int, TrackOutput] = {}
        self._backward_keys: list[tuple[str, str]] = []

    def keep_backward(self, frame: int, out: TrackOutput, seed: FrameAnnotation) -> None:
        if not self.backward:
            self._backward_keys = seed.keypoint_names()
        self.backward[frame] = out

    def merge(self, forward: TrackOutput, frame: int, seed: FrameAnnotation) -> tuple[TrackOutput, np.ndarray]:
        """The two passes of ``frame`` merged, in the forward seed's keypoint order."""
        s = self.stretch
        start = s.forward_seed if s.forward_seed is not None else s.start
        assert start is not None and s.end is not None
        backward = _aligned(self.backward.pop(frame), self._backward_keys, seed.keypoint_names(), forward)
        return merge_passes(forward, backward, frame, start, s.end)

    def prediction(
        self,
        seed: FrameAnnotation,
        frame: int,
        out: TrackOutput,
        apart: np.ndarray | None = None,
        provisional: bool = False,
    ) -> FrameAnnotation:
        """The seed's structure with this frame's positions, visibility and scores."""
        xy, visible, score = out.xy.tolist(), out.visible.tolist(), out.score.tolist()
        gaps = np.round(apart, 2).tolist() if apart is not None else None
        k = 0
        instances = []
        for inst in seed.instances:
            kps = []
            for kp in inst.keypoints:
                extra = {DISAGREEMENT_KEY: gaps[k]} if gaps is not None else {}
                kps.append(Keypoint(kp.name, xy[k][0], xy[k][1], visible[k], score[k], extra))
                k += 1
            instances.append(Instance(inst.name, kps, group_id=inst.group_id))
        seed_frame, seed_digest, end_frame, end_digest = (None,) * 4 if provisional else self.lineage
        return FrameAnnotation(
            frame,
            seed.image_height,
            seed.image_width,
            instances,
            source="prediction",
            seed_frame=seed_frame,
            seed_digest=seed_digest,
            end_frame=end_frame,
            end_digest=end_digest,
        )
