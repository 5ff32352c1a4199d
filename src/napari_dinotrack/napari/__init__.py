"""napari plugin: reader, sample data and the "DINO Keypoint Tracker" dock widget.

Everything here is thin glue over the engine; heavy modules (torch, transformers, the
pipeline) are imported only inside the functions that need them.
"""
