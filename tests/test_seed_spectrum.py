"""The seed's smoothing against scipy's Gaussian filter, computed another way."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from maxrf.seed_spectrum import SEED_SIGMA, smooth_spectra


def test_smooth_spectra_is_scipys_filter():
    x = np.random.default_rng(0).poisson(5, (20, 512)).astype(np.float32)
    np.testing.assert_allclose(smooth_spectra(x), gaussian_filter1d(x, SEED_SIGMA, axis=1, mode="mirror"),
                               atol=1e-4)
