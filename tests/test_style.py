"""Repository hygiene a contributor would otherwise break silently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_dinotrack"


def _ruff(*args: str) -> subprocess.CompletedProcess:
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.fail("ruff is not installed in this environment: pip install -e '.[testing]'")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    proc = _ruff("check", "src", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_code_is_formatted():
    proc = _ruff("format", "--check", "src", "tests", "benchmarks")
    assert proc.returncode == 0, "run `ruff format src tests benchmarks`:\n" + proc.stdout + proc.stderr


def test_engine_never_imports_qt_or_napari():
    offenders = []
    engine = [p for p in sorted(PACKAGE.rglob("*.py")) if "napari" not in p.relative_to(PACKAGE).parts[:-1]]
    assert len(engine) > 20
    for path in engine:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0].strip()
            if code.startswith(("import ", "from ")) and any(
                name in code.split() or code.split()[1].startswith(name + ".")
                for name in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide6", "magicgui", "superqt")
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_importing_the_package_stays_light():
    code = (
        "import sys, napari_dinotrack, napari_dinotrack.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'napari', 'qtpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
