"""Random kill -9s during `track`: after each, the files parse and the table heals; the end result is whole.

A short run of ``benchmarks/crash_resume.py`` (which runs 20 kills for the record in docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "crash_resume.py"


@pytest.mark.slow
def test_random_kills_during_track_lose_nothing(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--kills", "3", "--frames", "60", "--seed", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(out.read_text())
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert report["kills"] == 3
    assert all(r["table_ok_after_sync"] for r in report["rounds"])
    assert report["checks"]["passed"], report["checks"]
