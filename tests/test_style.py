"""Repository hygiene a contributor would otherwise break silently."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ("io", "backbone", "tracking", "pipeline.py", "runplan.py", "cli.py", "synthetic.py", "errors.py")


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[testing]'")
    proc = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_engine_never_imports_qt_or_napari():
    pkg = ROOT / "src" / "napari_dinotrack"
    offenders = []
    for entry in ENGINE:
        for path in ([pkg / entry] if entry.endswith(".py") else sorted((pkg / entry).rglob("*.py"))):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0].strip()
                if code.startswith(("import ", "from ")) and any(
                        name in code.split() or code.split()[1].startswith(name + ".")
                        for name in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide6", "magicgui", "superqt")):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_importing_the_package_stays_light():
    code = ("import sys, napari_dinotrack, napari_dinotrack.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'napari', 'qtpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
