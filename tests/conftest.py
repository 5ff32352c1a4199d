"""Fixtures shared by the test packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
# what Qt's xcb platform loads, and the package that brings each
_QT_LIBRARIES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xvfb looks for the X server
def pytest_configure(config: pytest.Config) -> None:
    """The napari tests need a virtual X server: install it where we can, else stop with one line."""
    if sys.platform != "linux" or not _runs_gui_tests(config):
        return
    missing = _missing_system_packages()
    if not missing:
        return
    packages = (TESTS / "system_packages.txt").read_text().split("\n")
    wanted = " ".join(w for line in packages if not line.startswith("#") for w in line.split())
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing what the napari tests need: {' '.join(missing)} …", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = (
            subprocess.run(
                f"apt-get update -qq && apt-get install -y -qq --no-install-recommends {wanted}",
                shell=True,
                env=env,
                stdout=subprocess.DEVNULL,
                check=False,
            ).returncode
            == 0
        )
        missing = _missing_system_packages() if done else missing
        if not missing:
            return
    pytest.exit(
        f"the napari tests need system packages that are missing: {' '.join(missing)} "
        f"(install them, e.g. sudo apt-get install {wanted}; or run only the engine tests with "
        "--ignore=tests/napari)",
        returncode=4,
    )


def _runs_gui_tests(config: pytest.Config) -> bool:
    try:
        import napari  # noqa: F401  (without the [napari] extra the GUI tests are not run at all)
    except ImportError:
        return False
    gui = TESTS / "napari"
    for arg in config.args or [str(config.rootpath)]:
        path = Path(arg.split("::")[0]).resolve()
        if path == gui or gui in path.parents or path in gui.parents:
            return True
    return False


def _missing_system_packages() -> list[str]:
    missing = [] if shutil.which("Xvfb") else ["xvfb"]
    try:
        ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
        known = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        known = ""
    return missing + [package for lib, package in _QT_LIBRARIES.items() if lib not in known]


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
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-vf",
        _VFR_TIMES[style].format(fps=fps),
        "-fps_mode",
        "passthrough",
        *(["-enc_time_base:v", "1:90000"] if style == "jitter" else []),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        "-qp",
        "0",
        "-g",
        "8",
        f"file:{path}",
    ]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True)
    return path


@pytest.fixture
def vfr_video():
    """``write_vfr(frames, path, fps=30, style="jitter")``: a variable-frame-rate copy of ``frames``."""
    return write_vfr
