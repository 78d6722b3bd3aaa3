"""maxrf.maps.histeq, the one histogram equalisation (report and viewer use it)."""

from __future__ import annotations

import numpy as np

from maxrf.maps import histeq
from maxrf.report import figures


def test_histeq_is_the_empirical_cdf():
    rng = np.random.default_rng(3)
    img = rng.uniform(-3.0, 5.0, size=(40, 50))
    n = img.size
    out = histeq(img, nbins=2**16)  # bins fine enough that pixels rarely share one
    # independent: the rank of each pixel (share of pixels at or below it); the binned
    # equalisation is within a pixel or two of it
    ranks = np.searchsorted(np.sort(img.ravel()), img.ravel(), side="right") / n
    np.testing.assert_allclose(out.ravel(), ranks, atol=2.0 / n)
    # with the default 256 bins, within the share of the fullest bin
    coarse = histeq(img)
    np.testing.assert_allclose(coarse.ravel(), ranks, atol=np.histogram(img, 256)[0].max() / n)


def test_histeq_constant_map_and_nan():
    assert np.all(histeq(np.full((4, 5), 7.0)) == 1.0)  # every pixel at or below its value
    img = np.array([[1.0, np.nan], [np.inf, 1.0]])
    out = histeq(img)
    assert np.isnan(out[0, 1]) and np.isnan(out[1, 0]) and np.all(out[[0, 1], [0, 1]] == 1.0)
    assert np.all(np.isnan(histeq(np.full((2, 2), np.nan))))


def test_report_equalises_with_histeq():
    rng = np.random.default_rng(4)
    img = rng.normal(size=(30, 30))
    img[3, 4] = np.nan
    np.testing.assert_array_equal(figures.equalise(img), histeq(img))
    assert np.all(figures.equalise(np.full((3, 3), 2.0)) == 1.0)
