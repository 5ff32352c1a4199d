"""What keeping the tracks table equal to the JSONs costs on a long video.

A result folder of N predicted frames (2 animals x 4 keypoints, as the tracker writes them) is
made once; then the checks a run makes are timed: the first check with no index (every JSON
read), a check when nothing changed (one stat per JSON), a check after one frame was corrected,
and a run that re-tracks 100 frames and is stopped after 10 (the rows of the other 90 come back
from memory, not from their JSONs).

    python benchmarks/bench_table_sync.py --frames 20000 --out benchmarks/results/table_sync_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from napari_dinotrack.io import table_index
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.io.labelme import frame_to_json, read_frame, write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.table_index import TracksTable, identity_of


def prediction(frame: int) -> FrameAnnotation:
    instances = [
        Instance(
            f"mouse{i}",
            [
                Keypoint(part, 100.0 + frame % 97 + 10 * k, 50.0 + i * 40, True, 0.9)
                for k, part in enumerate(("nose", "leftear", "rightear", "tail_base"))
            ],
            group_id=i,
        )
        for i in range(2)
    ]
    return FrameAnnotation(frame, 480, 640, instances, source="prediction", seed_frame=0, seed_digest="0" * 16)


def timed(fn, reads: list[int]) -> tuple[float, int, object]:
    reads.clear()
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, len(reads), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    reads: list[int] = []
    real_read = table_index.read_frame

    def counting_read(path, frame):
        reads.append(frame)
        return real_read(path, frame)

    table_index.read_frame = counting_read
    with tempfile.TemporaryDirectory() as tmp:
        layout = ResultLayout(Path(tmp) / "long.mp4")
        layout.ensure_folder()
        old = time.time_ns() - 3600 * 10**9  # written an hour ago: outside the racy window
        for f in range(args.frames):
            path = layout.frame_json(f)
            path.write_text(frame_to_json(prediction(f)))
            os.utime(path, ns=(old, old))
        results = {}
        seconds, n, _ = timed(lambda: TracksTable(layout).sync(), reads)
        results["first check, no index"] = {"seconds": round(seconds, 3), "jsons_read": n}
        seconds, n, _ = timed(lambda: TracksTable(layout).sync(), reads)
        results["check, nothing changed"] = {"seconds": round(seconds, 3), "jsons_read": n}
        fixed = read_frame(layout.frame_json(args.frames // 2))
        fixed.source = "manual"
        fixed.instances[0].keypoints[0].x += 1.0
        write_manual(layout, fixed)
        seconds, n, _ = timed(lambda: TracksTable(layout).sync(), reads)
        results["check after one corrected frame"] = {"seconds": round(seconds, 3), "jsons_read": n}

        def stopped_run() -> None:
            table = TracksTable(layout)
            first = args.frames // 4
            table.begin_run(first, first + 99)
            for f in range(first, first + 10):
                ann = prediction(f)
                ann.instances[0].keypoints[1].y += 2.0
                path = layout.frame_json(f)
                path.write_text(frame_to_json(ann))
                table.append(ann, identity_of(path))
            table.end_run()

        seconds, n, _ = timed(stopped_run, reads)
        results["re-track 100 frames, stopped after 10"] = {"seconds": round(seconds, 3), "jsons_read": n}
        results["table_mb"] = round(layout.tracks_csv.stat().st_size / 2**20, 1)
        results["index_mb"] = round(layout.tracks_index.stat().st_size / 2**20, 2)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "frames": args.frames, "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
