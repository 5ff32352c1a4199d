"""The test command on a machine without an X server: one line naming what is missing, no Qt core dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _pytest_without_x_server(tmp_path: Path, tests: Path) -> subprocess.CompletedProcess:
    """Run ``tests`` in a fresh pytest with a PATH that has neither Xvfb nor apt-get on it."""
    bare = tmp_path / "bin"
    bare.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=TESTS.parent,
        env={**os.environ, "PATH": str(bare)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the check is for Linux machines without a display")
def test_napari_tests_stop_with_the_missing_packages_named(tmp_path):
    pytest.importorskip("napari")
    run = _pytest_without_x_server(tmp_path, TESTS / "napari" / "test_napari_reader.py")
    assert run.returncode == 4, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "missing: xvfb" in out and "apt-get install" in out and "core dumped" not in out


def test_engine_tests_do_not_need_an_x_server(tmp_path):
    run = _pytest_without_x_server(tmp_path, TESTS / "test_runplan.py")
    assert run.returncode == 0, run.stdout + run.stderr
