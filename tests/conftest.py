"""Fixtures shared by the test packages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

# Presentation times with irregular gaps (0.7 to 1.2 frames) and two pauses of several frames,
# as phone recordings and captures that drop frames have them. "collisions" keeps the encoder's
# coarse 1/fps time base, so ffmpeg bumps clashing times by one tick: frames 65 µs apart.
_VFR_TIMES = {
    "jitter": "settb=1/90000,setpts='(N+0.45*mod(N*7\\,5)/4+3*gte(N\\,20)+2*gte(N\\,33))/({fps}*TB)'",
    "collisions": "setpts='(N+0.6*mod(N\\,3)+3*gte(N\\,20))/({fps}*TB)'",
}


def write_vfr(frames: np.ndarray, path: Path, fps: float = 30.0, style: str = "jitter") -> Path:
    """Encode (T, H, W, 3) uint8 frames losslessly as a variable-frame-rate video at ``path``."""
    _, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
           "-vf", _VFR_TIMES[style].format(fps=fps), "-fps_mode", "passthrough",
           *(["-enc_time_base:v", "1:90000"] if style == "jitter" else []),
           "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0", "-g", "8", f"file:{path}"]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True)
    return path


@pytest.fixture
def vfr_video():
    """``write_vfr(frames, path, fps=30, style="jitter")``: a variable-frame-rate copy of ``frames``."""
    return write_vfr
