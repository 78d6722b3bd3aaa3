"""The seed's smoothed max spectrum against scipy's Gaussian filter, computed another way."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from maxrf.seed_spectrum import SEED_SIGMA, binned_smoothed_max, smooth_spectra


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_binned_smoothed_max_matches_full_resolution(dtype):
    rng = np.random.default_rng(4)
    ch = np.arange(2048)
    peaks = sum(a * np.exp(-0.5 * ((ch - c) / w) ** 2) for a, c, w in
                [(40, 300, 8), (9, 700, 10), (120, 1200, 13), (15, 1250, 13)])
    lam = 2.0 + peaks * rng.random((600, 1))
    x = rng.poisson(lam).astype(dtype)
    exact = gaussian_filter1d(x.astype(np.float64), SEED_SIGMA, axis=1, mode="mirror").max(axis=0)
    fast = binned_smoothed_max(x)
    assert fast.shape == exact.shape
    assert np.abs(fast - exact).max() <= 0.02 * exact.max()
    # the peaks sit where they are
    for c in (300, 700, 1200):
        assert abs(int(np.argmax(fast[c - 30:c + 30])) - 30) <= 2


def test_smooth_spectra_is_scipys_filter():
    x = np.random.default_rng(0).poisson(5, (20, 512)).astype(np.float32)
    np.testing.assert_allclose(smooth_spectra(x), gaussian_filter1d(x, SEED_SIGMA, axis=1, mode="mirror"),
                               atol=1e-4)
