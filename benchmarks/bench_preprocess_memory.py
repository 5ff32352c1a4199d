"""Peak memory of turning a batch of large frames into the backbone's input.

Each measurement runs in a fresh process: the input batch is made first, then the peak resident
memory added by :func:`~napari_dinotrack.backbone.preprocess.to_working_tensor` is read from
``ru_maxrss`` (Linux: KiB).

    python benchmarks/bench_preprocess_memory.py --out benchmarks/results/preprocess_memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys
import numpy as np
import torch
from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.preprocess import to_working_tensor

batch, height, width, short_side = (int(v) for v in sys.argv[1:5])
frames = np.empty((batch, height, width, 3), np.uint8)
frames[...] = np.arange(width, dtype=np.uint8)[None, None, :, None]  # touch every page
geometry = compute_geometry(height, width, short_side, 16)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = to_working_tensor(frames, geometry, torch.device("cpu"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"input_mb": frames.nbytes / 2**20, "output_mb": out.element_size() * out.nelement() / 2**20,
                  "peak_added_mb": (after - before) / 1024}))
"""

CASES = [  # (batch, height, width, short side)
    (6, 4320, 7680, 768),  # 8K UHD, the batch of the issue
    (8, 2160, 3840, 768),  # 4K, the default batch size
    (8, 1080, 1920, 768),  # full HD
]


def measure(batch: int, height: int, width: int, short_side: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(batch), str(height), str(width), str(short_side)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {"batch": batch, "height": height, "width": width, "short_side": short_side, **json.loads(proc.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    rows = [measure(*case) for case in CASES]
    for r in rows:
        print(
            f"{r['batch']} x {r['width']}x{r['height']} -> short side {r['short_side']}: "
            f"input {r['input_mb']:.0f} MB, output {r['output_mb']:.0f} MB, peak added {r['peak_added_mb']:.0f} MB"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "cases": rows}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
