"""A tqdm progress bar fed by the engine's ``progress_callback(done, total)``."""

from __future__ import annotations

import sys
from typing import Any


class FrameProgress:
    """Frames done out of total on stderr, with frames/s and time left; silent when ``quiet``."""

    def __init__(self, quiet: bool, unit: str = "frame", desc: str | None = None) -> None:
        self.quiet = quiet
        self.unit = unit
        self.desc = desc
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                unit=self.unit,
                desc=self.desc,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2 if sys.stderr.isatty() else 5.0,
            )
        self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
