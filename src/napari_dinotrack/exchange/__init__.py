"""Results in other pose tools' formats, and their labels as seeds: the ``[exchange]`` extra.

Built on movement (and sleap-io underneath it), which read and write the formats of the field:

* :mod:`.dataset`: a result folder (or a keypoints table) as a movement poses dataset;
* :mod:`.export`: DeepLabCut ``.h5``/``.csv``, SLEAP ``.slp``/analysis ``.h5``, NWB and netCDF files;
* :mod:`.seeds`: DeepLabCut, SLEAP and COCO labels written as manual LabelMe frames (tracking seeds);
* :mod:`.cleanup`: movement's filters (confidence, gap filling, median, Savitzky–Golay), never in place;
* :mod:`.skeleton`: edges between keypoints, stored in the result folder;
* :mod:`.render`: an overlay video of the tracked keypoints.

movement, sleap-io and pynwb are imported inside the functions that need them
(:func:`.extra.require`), so the rest of the package works without the extra and a missing
package is reported as a :class:`~napari_dinotrack.errors.MissingExtraError`.
"""
