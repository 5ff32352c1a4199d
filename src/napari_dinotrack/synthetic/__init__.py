"""Generated videos with exact ground truth, for the sample data, the tests and the benchmarks.

``clips``: the simple sample clip (textured ellipses with coloured body-part dots) behind
``napari-dinotrack sample``. ``scenes``: procedural scenario families whose factors (size,
texture, speed, turns, crowding, occluders, light, noise, camera) are drawn at random from a
seed, used to measure how tracking generalises.
"""

from .clips import BODY_PARTS, PART_COLOURS, SyntheticClip, make_clip, write_sample

__all__ = ["BODY_PARTS", "PART_COLOURS", "SyntheticClip", "make_clip", "write_sample"]
