"""Tracking on patch features: settings (config), keypoints (keypoints/) and instance masks (masks/)."""
