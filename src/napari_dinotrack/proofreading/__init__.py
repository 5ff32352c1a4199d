"""Proofreading a result folder: frames worth a second look, identity swaps, which model made what.

* :mod:`.suspicious`: lost points, low scores, large jumps and two-way disagreement, per frame;
* :mod:`.identity`: swap two animals' names over a range of frames (files, masks and table);
* :mod:`.provenance`: predictions made by another backbone or working resolution.

No napari or Qt here: the dock (``napari/proofreader.py``) is thin glue over these.
"""
