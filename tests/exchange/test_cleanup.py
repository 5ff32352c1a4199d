"""Clean-up filters (movement's) on a dataset with known spikes, gaps and low scores; the input is never changed."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dinotrack.errors import ConfigError
from napari_dinotrack.exchange.cleanup import clean
from napari_dinotrack.exchange.settings import CleanupSettings

N = 40


@pytest.fixture
def ds():
    """One keypoint moving 1 px/frame in x, with a spike (frame 10), a low score (frame 20), gaps of 2 and 5."""
    from movement.io import load_poses

    x = np.arange(N, dtype=float)
    position = np.stack([x, np.full(N, 50.0)])[None].transpose(2, 1, 0)[..., None]  # (T, 2, 1, 1)
    position = np.ascontiguousarray(position)
    position[10, 0] += 30.0
    position[[25, 26], :] = np.nan
    position[[31, 32, 33, 34, 35], :] = np.nan
    confidence = np.full((N, 1, 1), 0.9)
    confidence[20] = 0.1
    return load_poses.from_numpy(position, confidence, ["animal1"], ["nose"])


def x_of(ds) -> np.ndarray:
    return ds["position"].sel(space="x").values[:, 0, 0]


def test_off_by_default_returns_an_equal_copy(ds):
    out = clean(ds, CleanupSettings())
    assert not CleanupSettings().active
    np.testing.assert_array_equal(x_of(out), x_of(ds))
    assert out is not ds


def test_low_scores_are_dropped_and_the_input_is_kept(ds):
    before = x_of(ds).copy()
    out = clean(ds, CleanupSettings(min_confidence=0.5))
    assert np.isnan(x_of(out)[20]) and x_of(out)[19] == 19.0
    np.testing.assert_array_equal(x_of(ds), before)


def test_gaps_up_to_max_gap_are_filled(ds):
    x = x_of(clean(ds, CleanupSettings(max_gap=2)))
    assert x[25] == pytest.approx(25.0) and x[26] == pytest.approx(26.0)
    assert np.isnan(x[31:36]).all()  # a gap of 5 frames stays a gap


def test_median_removes_a_spike_without_filling_or_widening_gaps(ds):
    x = x_of(clean(ds, CleanupSettings(median_window=5)))
    assert abs(x[10] - 10.0) <= 1.0  # the median of 8, 9, 40, 11, 12
    assert np.isnan(x[25:27]).all() and np.isfinite(x[24]) and np.isfinite(x[27])


def test_savgol_smooths_and_keeps_points_next_to_gaps(ds):
    out = clean(ds, CleanupSettings(savgol_window=7, savgol_order=2))
    x = x_of(out)
    assert abs(x[10] - 10.0) < 30.0 * 0.6  # the spike is spread out
    assert np.isfinite(x[24]) and np.isfinite(x[27]) and np.isnan(x[25])
    assert out.attrs["cleanup"] == "Savitzky-Golay 7/2"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"median_window": 4}, "odd number"),
        ({"savgol_window": 3, "savgol_order": 3}, "larger than"),
        ({"min_confidence": 1.5}, "min_confidence"),
    ],
)
def test_invalid_settings_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        CleanupSettings(**changes)
