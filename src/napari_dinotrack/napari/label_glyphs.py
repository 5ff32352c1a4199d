"""Pre-rendering the glyphs of the keypoint labels, so that no tracking run stalls the viewer drawing them.

napari draws text from a glyph atlas that it fills the first time each character is drawn, with a
signed-distance field computed on the CPU: 3–20 ms per character. A keypoints layer shows its
labels only on the frame on screen, and napari opens a video on its middle frame, so the labels
were often first drawn mid-run, when the tracker reached that frame: labels such as
``animal1:nose … animal2:tail_base`` then cost the GUI thread about 200 ms at once. Rendering
their characters before the run takes that cost out of the run.

napari has no call made for this. The atlas is reached through the window's ``QtViewer``
(``napari.qt``), its canvas's ``font_info()`` and the font manager's ``get_font()``; if any of that
changes, the warm-up does nothing and the glyphs are rendered when first drawn, as without it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from napari.layers import Points
    from qtpy.QtWidgets import QWidget

__all__ = ["label_characters", "warm_label_glyphs"]

logger = logging.getLogger(__name__)


def label_characters(layer: Points) -> set[str]:
    """The characters in the labels of ``layer``'s points, on every frame."""
    chars: set[str] = set()
    for text in pd.unique(np.asarray(layer.text.values, dtype=object).ravel()):
        chars.update(str(text))
    return chars


def warm_label_glyphs(widget: QWidget | None, layer: Points | None) -> int:
    """Render now the glyphs of every character in ``layer``'s labels; how many characters that is.

    ``widget`` is any widget in the napari window (the dock). A run only adds points with the
    animal and keypoint names of its seeds, which are in the layer already, so this covers the
    run's labels. Characters already rendered cost a dictionary look-up, so this can be called
    before every run. Returns 0 without doing anything when the labels are off or the viewer's
    glyph atlas cannot be reached.
    """
    if layer is None or not layer.text.visible:
        return 0
    font = _canvas_font(widget)
    if font is None:
        return 0
    chars = sorted(label_characters(layer))
    try:
        for char in chars:
            font[char]  # renders the glyph into the atlas the labels are drawn from, once
    except Exception:  # napari changed: the labels still render their glyphs when first drawn
        logger.debug("could not pre-render label glyphs", exc_info=True)
        return 0
    return len(chars)


def _canvas_font(widget: QWidget | None) -> Any:
    """The font (glyph atlas) napari's canvas draws layer text with; None if it cannot be reached."""
    try:
        from napari.qt import QtViewer

        window = widget.window() if widget is not None else None
        qt_viewer = window.findChild(QtViewer) if window is not None else None
        if qt_viewer is None:  # not docked yet
            return None
        info = qt_viewer.canvas.font_info()
        return info.font_manager.get_font(info.face)
    except Exception:
        logger.debug("no glyph atlas to pre-render label glyphs into", exc_info=True)
        return None
