"""The seed's smoothing and smoothed max spectrum against scipy's Gaussian filter, computed
the plain way (every pixel smoothed, then the maximum)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from maxrf.seed_spectrum import (
    SEED_SIGMA,
    SmoothedMax,
    smooth_spectra,
    smoothed_max,
)


def plain_max(x: np.ndarray, sigma: float = SEED_SIGMA) -> np.ndarray:
    return gaussian_filter1d(x.astype(np.float64), sigma, axis=1, mode="mirror").max(axis=0)


def assert_exact(got: np.ndarray, ref: np.ndarray) -> None:
    """Equal to float32 rounding of the largest value."""
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * max(1.0, float(ref.max())))


def test_smooth_spectra_is_scipys_filter():
    x = np.random.default_rng(0).poisson(5, (20, 512)).astype(np.float32)
    np.testing.assert_allclose(smooth_spectra(x), gaussian_filter1d(x, SEED_SIGMA, axis=1, mode="mirror"),
                               atol=1e-4)


def peaked_counts(rng, n: int, channels: int, level: float) -> np.ndarray:
    """Poisson counts of pixels with a continuum and three Gaussian peaks of varying height."""
    ch = np.arange(channels)
    peaks = sum(np.exp(-0.5 * ((ch - c) / 6.0) ** 2)[None, :] * rng.gamma(2.0, h, (n, 1))
                for c, h in ((0.2 * channels, 20), (0.45 * channels, 5), (0.8 * channels, 60)))
    continuum = np.exp(-ch / channels)[None, :] * rng.uniform(0.5, 1.5, (n, 1))
    return rng.poisson(level * (continuum + peaks)).astype(np.uint16)


@pytest.mark.parametrize("level", [0.02, 0.3, 3.0, 30.0, 1000.0])
def test_smoothed_max_equals_the_plain_max_of_peaked_poisson_pixels(level):
    x = peaked_counts(np.random.default_rng(int(level * 100)), 1500, 1024, level)
    assert_exact(smoothed_max(x), plain_max(x))


@pytest.mark.parametrize("level", [0.05, 1.0, 100.0])
def test_smoothed_max_equals_the_plain_max_of_flat_noise(level):
    x = np.random.default_rng(3).poisson(level, (1200, 2048)).astype(np.uint16)
    assert_exact(smoothed_max(x), plain_max(x))


def test_hot_pixels_and_a_single_count():
    rng = np.random.default_rng(4)
    x = rng.poisson(1.0, (800, 2048)).astype(np.uint16)
    x[17] += rng.poisson(400, 2048).astype(np.uint16)  # a hot pixel, every channel
    x[300, 5] = 60000  # one huge count at the low end (mirror edge)
    x[500, 2047] = 50000  # and at the high end
    ref = plain_max(x)
    assert_exact(smoothed_max(x), ref)
    zeros = np.zeros((200, 512), dtype=np.uint8)
    zeros[10, 100] = 1
    assert_exact(smoothed_max(zeros), plain_max(zeros))


@pytest.mark.parametrize("channels", [1001, 130, 77])
def test_channels_not_a_multiple_of_the_bin(channels):
    x = peaked_counts(np.random.default_rng(channels), 400, channels, 5.0)
    assert_exact(smoothed_max(x), plain_max(x))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint32])
def test_other_dtypes_and_negative_values(dtype):
    rng = np.random.default_rng(6)
    x = peaked_counts(rng, 300, 512, 4.0).astype(dtype)
    assert_exact(smoothed_max(x), plain_max(x))
    if np.dtype(dtype).kind != "u":
        x[5, 40] = -30  # no bound from bin sums: smoothed whole, still the plain maximum
        assert_exact(smoothed_max(x), plain_max(x))


@pytest.mark.parametrize("sigma", [1.5, 3.0, 12.0])
def test_other_sigmas(sigma):
    x = peaked_counts(np.random.default_rng(7), 500, 1024, 3.0)
    assert_exact(smoothed_max(x, sigma), plain_max(x, sigma))


def test_pruning_skips_most_pairs_and_a_floor_skips_more():
    x = peaked_counts(np.random.default_rng(8), 1000, 2048, 3.0)
    ref = plain_max(x)
    stats: dict = {}
    assert_exact(smoothed_max(x, stats=stats), ref)
    assert stats["pairs"] < 0.3  # without pruning every pair is smoothed
    # a floor of values that pixels reach (here: the answer itself) prunes more
    floor = ref.astype(np.float32)
    again: dict = {}
    assert_exact(smoothed_max(x, floor=floor, stats=again), ref)
    assert again["pairs"] < stats["pairs"]


def test_a_floor_above_every_pixel_is_kept():
    x = peaked_counts(np.random.default_rng(10), 300, 512, 2.0)
    floor = np.full(512, 1e6, dtype=np.float32)
    np.testing.assert_array_equal(smoothed_max(x, floor=floor), floor)


def test_reduction_blocks_combine_to_the_whole_max():
    x = peaked_counts(np.random.default_rng(9), 24 * 30, 700, 8.0).reshape(24, 30, 700)
    from maxrf.engine import tile_blocks

    red = SmoothedMax()
    acc = red.start((24, 30))
    for b in tile_blocks(24, 30, 7, 11):
        acc = red.add(acc, b, red.block(np.ascontiguousarray(x[b.rows, b.cols]), b))
    assert_exact(red.finish(acc, (24, 30)), plain_max(x.reshape(-1, 700)))


def test_a_pixel_just_above_the_floor_is_not_pruned():
    # one count spike at the first channel of a 4-channel bin: its bound there equals its
    # exact value (the bound is tight); the floor over the bin sits just below that value,
    # within the pruning margin, so only a margin on the safe side smooths the pixel
    x = np.zeros((100, 512), dtype=np.uint16)
    x[37, 200] = 1000
    ref = plain_max(x)
    floor = np.zeros(512, dtype=np.float32)
    floor[200:204] = ref[200] * (1 - 5e-6)
    assert_exact(smoothed_max(x, floor=floor), np.maximum(ref, floor))


def assert_each_channel_exact(got: np.ndarray, ref: np.ndarray) -> None:
    """Every channel to float32 rounding of its own value: a tail of 1e-3 counts next to a
    peak of thousands must be that channel's own maximum, not only close in absolute terms."""
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-30)


def far_tail_counts(rng, n: int = 600, channels: int = 512) -> np.ndarray:
    """Nothing below channel 30 (a detector threshold), peaks at 33-45 of varied height and
    place: the lowest channels' maxima are the far tails (the pruning bound is loosest there)."""
    ch = np.arange(channels)
    centre = rng.uniform(33, 45, (n, 1))
    height = rng.gamma(1.5, 200, (n, 1))
    x = rng.poisson(height * np.exp(-0.5 * ((ch - centre) / 2.5) ** 2) + 0.5 * (ch >= 30))
    x[:, :30] = 0
    return x.astype(np.uint16)


def test_far_tails_at_the_low_channels_are_each_channels_own_maximum():
    for seed in range(3):
        x = far_tail_counts(np.random.default_rng(10 + seed))
        assert_each_channel_exact(smoothed_max(x), plain_max(x))


@pytest.mark.parametrize("channel", [0, 1, 2, 3, 29, 30, 31, 200, 509, 510, 511])
def test_a_single_high_pixel_anywhere_in_a_bin(channel):
    rng = np.random.default_rng(channel)
    x = rng.poisson(0.02, (400, 512)).astype(np.uint16)
    x[123, channel] = 5000
    x[124, channel] = 4999  # a near tie in the next pixel: the bound must not prune the winner
    assert_each_channel_exact(smoothed_max(x), plain_max(x))


@pytest.mark.parametrize("level", [1, 7, 1000])
def test_flat_spectra_where_every_pixel_is_a_candidate(level):
    x = np.full((300, 1024), level, dtype=np.uint16)
    assert_each_channel_exact(smoothed_max(x), plain_max(x))
    x[250, 500] += 1  # one count more in one pixel: only it wins, and only near channel 500
    x[251] += 1  # a whole pixel one count higher wins every other channel
    assert_each_channel_exact(smoothed_max(x), plain_max(x))
