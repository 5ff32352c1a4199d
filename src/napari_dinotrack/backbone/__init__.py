"""Feature extractors ("backbones") that turn video frames into L2-normalised patch features.

Modules: ``base`` (the :class:`Backbone` protocol, working geometry, scheme registry),
``catalog`` (known DINOv3/DINOv2 checkpoints and name aliases; no torch import), ``loader``
(device/precision choice, weight lookup incl. ``DINOV3_LOCATION``, :func:`load_backbone`,
``BackboneUnavailableError``), ``preprocess`` and ``pixel`` (a weight-free test backbone).
Nothing is imported here, so ``import napari_dinotrack.backbone`` stays fast.
"""
