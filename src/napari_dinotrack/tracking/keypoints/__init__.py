"""Keypoint tracking: the per-frame tracker (tracker), its batched scoring (matching), feature
sampling at sub-patch positions (sampling) and Lucas-Kanade optical flow (flow)."""
