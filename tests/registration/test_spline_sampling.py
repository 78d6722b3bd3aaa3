"""The compiled cubic B-spline sampler against scipy and against polynomials it must reproduce."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates, spline_filter

from maxrf.registration.sampling import interleave, sample_cubic


def _coeffs(channels: np.ndarray) -> np.ndarray:
    return np.stack([spline_filter(c, order=3, output=np.float64) for c in channels])


def test_sampler_equals_scipy_map_coordinates_including_the_edges():
    rng = np.random.default_rng(3)
    chans = rng.random((3, 37, 53))
    coef = _coeffs(chans)
    x = np.r_[rng.uniform(0, 52, 500), 0.0, 52.0, 0.3, 51.9]
    y = np.r_[rng.uniform(0, 36, 500), 36.0, 0.0, 35.8, 0.2]
    got = sample_cubic(interleave(coef), x, y)
    want = np.column_stack([map_coordinates(c.astype(np.float32), [y, x], order=3, mode="nearest",
                                            prefilter=False) for c in coef])
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_sampler_reproduces_a_cubic_polynomial_inside():
    # cubic B-splines reproduce polynomials up to degree 3 exactly away from the edges
    h, w = 40, 60
    r, c = np.mgrid[0:h, 0:w].astype(float)

    def poly(x, y):
        return 0.5 + 0.01 * x - 0.02 * y + 1e-3 * x * y + 2e-4 * x ** 2 + 1e-5 * y ** 3

    coef = _coeffs(poly(c, r)[None])
    rng = np.random.default_rng(4)
    x, y = rng.uniform(12, w - 13, 300), rng.uniform(12, h - 13, 300)
    got = sample_cubic(interleave(coef), x, y)[:, 0]
    np.testing.assert_allclose(got, poly(x, y), atol=1e-4)


def test_points_spread_over_threads_give_scipys_values_too(monkeypatch):
    # enough points for the threaded path (PARALLEL_MIN_POINTS per thread)
    import numba

    from maxrf.registration import sampling

    rng = np.random.default_rng(5)
    coef = _coeffs(rng.random((3, 30, 40)))
    n = 2 * sampling.PARALLEL_MIN_POINTS + 7
    x, y = rng.uniform(0, 39, n), rng.uniform(0, 29, n)
    calls = []
    threaded = sampling._sample
    monkeypatch.setattr(sampling, "_sample", lambda *a: calls.append(a[-1]) or threaded(*a))
    got = sample_cubic(interleave(coef), x, y)
    assert calls == ([2] if numba.get_num_threads() >= 2 else [])
    want = np.column_stack([map_coordinates(c.astype(np.float32), [y, x], order=3, mode="nearest",
                                            prefilter=False) for c in coef])
    np.testing.assert_allclose(got, want, atol=2e-6)
