"""Convert's one-walk summary spectra against numpy and scipy computed on the whole cube."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from maxrf import engine
from maxrf.seed_spectrum import SEED_SIGMA
from maxrf.summary import SummarySpectra

from conftest import ArraySource


def reference(cube: np.ndarray, sigma: float = SEED_SIGMA) -> dict:
    """Max, first argmax pixel, mean and smoothed max of a cube, the plain numpy/scipy way."""
    h, w, c = cube.shape
    flat = cube.reshape(h * w, c)
    idx = flat.argmax(axis=0)
    smooth = gaussian_filter1d(flat.astype(np.float64), sigma, axis=1, mode="mirror")
    return {"max": flat.max(axis=0), "pixels": np.stack(np.unravel_index(idx, (h, w)), axis=1),
            "mean": flat.astype(np.float64).mean(axis=0), "smax": smooth.max(axis=0)}


def check(cube: np.ndarray, rows: int, cols: int, smoothed: bool = True) -> None:
    ref = reference(cube)
    out = engine.run(ArraySource(cube, rows, cols),
                     {"s": SummarySpectra(cube.shape[1], smoothed=smoothed)})["s"]
    values, pixels = out["max"]
    np.testing.assert_array_equal(values, ref["max"])
    np.testing.assert_array_equal(pixels, ref["pixels"])  # ties: the first pixel, as argmax
    np.testing.assert_allclose(out["mean"], ref["mean"], rtol=1e-12)
    if smoothed:
        np.testing.assert_allclose(out["smax"], ref["smax"], rtol=0,
                                   atol=2e-6 * max(1.0, float(ref["smax"].max())))
    else:
        assert "smax" not in out


def peaked(rng, shape, level=3.0, dtype=np.uint16):
    h, w, c = shape
    ch = np.arange(c)
    peaks = sum(np.exp(-0.5 * ((ch - p * c) / 5.0) ** 2) * rng.gamma(2.0, a, (h, w, 1))
                for p, a in ((0.25, 30.0), (0.6, 8.0), (0.9, 80.0)))
    return rng.poisson(level * (1 + peaks)).astype(dtype)


@pytest.mark.parametrize("rows,cols", [(1, 1), (4, 7), (5, 17), (13, 3)])
def test_equal_to_numpy_and_scipy_for_any_block_layout(rows, cols):
    check(peaked(np.random.default_rng(rows * 31 + cols), (13, 17, 256)), rows, cols)


@pytest.mark.parametrize("channels", [1023, 77, 65])
def test_odd_channel_counts(channels):
    check(peaked(np.random.default_rng(channels), (9, 11, channels)), 4, 5)


def test_few_channels_fall_back_to_smoothing_every_pixel():
    check(peaked(np.random.default_rng(2), (6, 5, 40)), 3, 5)  # fewer than the bins need


def test_all_zeros_and_one_pixel():
    check(np.zeros((7, 9, 300), dtype=np.uint16), 3, 4)
    one = np.zeros((7, 9, 300), dtype=np.uint16)
    one[6, 8, 299] = 65535  # the last pixel, the last channel (mirror edge), the dtype's top
    check(one, 3, 4)
    check(peaked(np.random.default_rng(3), (1, 1, 512)), 1, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.int16, np.int32, ">u2"])
def test_other_integer_types(dtype):
    cube = peaked(np.random.default_rng(4), (8, 10, 200), level=1.0, dtype=np.uint8).astype(dtype)
    check(cube, 3, 4)
    if np.dtype(dtype).kind == "i":
        cube[2, 3, 50] = -7  # no bound from bin sums: smoothed whole, still the plain maximum
        check(cube, 3, 4)


def test_without_the_smoothed_max_and_ties_to_the_first_pixel():
    cube = np.ones((6, 6, 128), dtype=np.uint16)  # every pixel ties everywhere
    check(cube, 4, 4, smoothed=False)
    check(cube, 4, 4)


def test_a_new_pass_starts_from_nothing():
    high = peaked(np.random.default_rng(5), (6, 7, 256), level=50.0)
    low = peaked(np.random.default_rng(6), (6, 7, 256), level=0.5)
    red = SummarySpectra(7)
    engine.run(ArraySource(high, 3, 7), {"s": red})
    out = engine.run(ArraySource(low, 3, 7), {"s": red})["s"]  # no trace of the first cube
    np.testing.assert_allclose(out["smax"], reference(low)["smax"], rtol=0, atol=1e-4)


def test_far_tails_at_the_low_channels_in_the_one_walk():
    # nothing below channel 30, peaks at 33-45: each low channel's maximum is a far tail
    rng = np.random.default_rng(21)
    h, w, c = 12, 20, 300
    centre = rng.uniform(33, 45, (h, w, 1))
    counts = rng.poisson(rng.gamma(1.5, 200, (h, w, 1))
                         * np.exp(-0.5 * ((np.arange(c) - centre) / 2.5) ** 2))
    counts[..., :30] = 0
    cube = counts.astype(np.uint16)
    out = engine.run(ArraySource(cube, 4, 7), {"s": SummarySpectra(w)})["s"]
    np.testing.assert_allclose(out["smax"], reference(cube)["smax"], rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("pixels", [65535, 65538, 70000])
@pytest.mark.parametrize("dtype,value", [(np.uint16, 65535), (np.int16, -32768), (np.int16, 32767),
                                         (np.uint8, 255)])
def test_sums_of_the_largest_blocks_do_not_overflow(pixels, dtype, value):
    # one block of every pixel at the dtype's extreme: the 32-bit sums of small blocks
    # (maxrf.summary.accumulators) reach 65535 x 65535 here, a 64-bit sum beyond
    cube = np.full((1, pixels, 3), value, dtype=dtype)
    cube[0, -1, 1] = value - 1 if value > 0 else value + 1
    out = engine.run(ArraySource(cube, 1, pixels), {"s": SummarySpectra(pixels, smoothed=False)})["s"]
    flat = cube.reshape(pixels, 3).astype(np.float64)
    np.testing.assert_allclose(out["mean"], flat.sum(axis=0) / pixels, rtol=1e-14)
    np.testing.assert_array_equal(out["max"][0], cube.reshape(pixels, 3).max(axis=0))
    np.testing.assert_array_equal(out["max"][1][:, 1], cube.reshape(pixels, 3).argmax(axis=0))
