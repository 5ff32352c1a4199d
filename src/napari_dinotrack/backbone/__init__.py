"""Feature extractors ("backbones") that turn video frames into L2-normalised patch features.

Modules: ``base`` (the :class:`Backbone` protocol, working geometry, scheme registry),
``catalog`` (known DINOv3/DINOv2 checkpoints and name aliases; no torch import), ``loader``
(:func:`load_backbone`, the entry point, re-exporting the names below), ``device`` (device and
precision choice), ``weights`` (weight lookup incl. ``DINOV3_LOCATION``,
``BackboneUnavailableError``), ``hub`` (Hugging Face cache, offline switches, time-outs), ``hf``
(``HFDinoBackbone``), ``preprocess`` and ``pixel`` (a weight-free test backbone).
Nothing is imported here, so ``import napari_dinotrack.backbone`` stays fast.
"""
