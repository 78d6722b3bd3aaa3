"""maxrf.maps.sums: the one window-sum kernel (peak slices, window maps, sum image, viewer)."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.engine import Block
from maxrf.errors import ParameterError
from maxrf.maps.sums import ChannelWindows, SumImage


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_window_sums_equal_plain_numpy(dtype):
    rng = np.random.default_rng(0)
    x = (rng.random((50, 300)) * 200).astype(dtype)
    # overlapping, nested, single-channel, gapped windows
    w = np.array([[0, 5], [3, 40], [100, 100], [150, 299], [10, 20]])
    ref = np.stack([x[:, a : b + 1].astype(np.float64).sum(axis=1) for a, b in w], axis=1)
    np.testing.assert_allclose(ChannelWindows(w).sums(x), ref, rtol=1e-12)
    one = x[:, 20:61].astype(np.float64).sum(axis=1)  # one window: a view, no gather
    np.testing.assert_allclose(ChannelWindows([[20, 60]]).sums(x)[:, 0], one, rtol=1e-12)


def test_sum_image_window_and_tail():
    rng = np.random.default_rng(1)
    cube = rng.integers(0, 1000, size=(5, 10, 300)).astype(np.uint16)
    where = Block(0, slice(0, 5), slice(0, 10))
    np.testing.assert_array_equal(SumImage(7, 200).pixel_maps(cube, where)[0],
                                  cube[..., 7:201].sum(axis=-1, dtype=np.int64))
    np.testing.assert_array_equal(SumImage(100).pixel_maps(cube, where)[0],
                                  cube[..., 100:].sum(axis=-1, dtype=np.int64))


def test_bad_windows():
    with pytest.raises(ParameterError):
        ChannelWindows([[5, 2]])


def test_band_images_partition_the_counts_into_equal_shares():
    from maxrf.maps import band_images

    rng = np.random.default_rng(2)
    # a spectrum with a strong peak: equal-count bands are narrow there, wide elsewhere
    mean = 2 + 300 * np.exp(-0.5 * ((np.arange(256) - 120) / 3.0) ** 2)
    cube = rng.poisson(mean * rng.uniform(0.5, 1.5, (12, 9, 1))).astype(np.uint16)
    images, windows = band_images(cube, 8, min_keV=None)
    assert windows[0, 0] == 0 and windows[-1, 1] == 255
    np.testing.assert_array_equal(windows[1:, 0], windows[:-1, 1] + 1)  # contiguous, no overlap
    ref = np.stack([cube[..., a: b + 1].sum(axis=-1, dtype=np.int64) for a, b in windows])
    np.testing.assert_array_equal(images, ref)
    np.testing.assert_array_equal(images.sum(axis=0), cube.sum(axis=-1, dtype=np.int64))
    # each band holds about an eighth of the counts (to within the channel at its edge)
    total = cube.reshape(-1, 256).mean(axis=0)
    shares = np.array([total[a: b + 1].sum() for a, b in windows]) / total.sum()
    assert np.all(np.abs(shares - 1 / 8) < total.max() / total.sum() + 1e-9)
    assert np.diff(windows, axis=1).min() < 5 < np.diff(windows, axis=1).max()
