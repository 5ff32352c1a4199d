"""Peak memory of preparing a batch of large frames does not grow with native size x batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_a_4k_batch_never_becomes_float_at_native_size():
    # 8 frames of 3840x2160 are 190 MB as uint8 but 1.6 GB as float32; one float frame is 95 MB.
    script = textwrap.dedent("""
        import json, resource
        import numpy as np, torch
        from napari_dinotrack.backbone.base import compute_geometry
        from napari_dinotrack.backbone.preprocess import to_working_tensor
        frames = np.empty((8, 2160, 3840, 3), np.uint8)
        frames[...] = np.arange(3840, dtype=np.uint8)[None, None, :, None]
        frames.flags.writeable = False  # like cached video frames
        geometry = compute_geometry(2160, 3840, 384, 16)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = to_working_tensor(frames, geometry, torch.device("cpu"))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"added_mb": (after - before) / 1024, "shape": list(out.shape)}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert result["shape"] == [8, 3, 384, 688]
    assert result["added_mb"] < 350, result  # about one float frame plus one uint8 copy, not the whole batch
