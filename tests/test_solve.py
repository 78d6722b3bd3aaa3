"""maxrf.solve.nnls_gram, the one NNLS solver, against scipy.optimize.nnls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from maxrf.solve import nnls_gram


def _problem(rng, m, n_rows=1, channels=300):
    """Overlapping Gaussian columns of very different scales (ill-conditioned, as fits)."""
    ch = np.arange(float(channels))
    cen = np.sort(rng.uniform(0, channels, m))
    wid = rng.uniform(3, 12, m)
    a = np.exp(-0.5 * ((ch[:, None] - cen[None]) / wid[None]) ** 2) * rng.uniform(0.1, 100, m)
    x = np.maximum(rng.normal(size=(n_rows, m)), 0) * 50
    y = x @ a.T + rng.normal(size=(n_rows, channels)) * 3
    return a, y


@pytest.mark.parametrize("seed", range(6))
def test_single_problems_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    a, y = _problem(rng, int(rng.integers(3, 30)))
    got, _ = nnls_gram(a.T @ a, a.T @ y[0])
    ref = nnls(a, y[0], maxiter=5000)[0]
    assert got.min() >= 0
    chi_got, chi_ref = np.sum((a @ got - y[0]) ** 2), np.sum((a @ ref - y[0]) ** 2)
    assert chi_got <= chi_ref * (1 + 1e-8)


def test_batched_rows_equal_scipy_and_respect_free_columns():
    rng = np.random.default_rng(7)
    a, y = _problem(rng, 8, n_rows=200)
    gram, b = a.T @ a, y @ a
    got, refined = nnls_gram(gram, b)  # many rows: the batched active set
    assert refined.any()
    for i in range(0, 200, 7):
        ref = nnls(a, y[i], maxiter=5000)[0]
        assert np.sum((a @ got[i] - y[i]) ** 2) <= np.sum((a @ ref - y[i]) ** 2) * (1 + 1e-8)
    cons = np.array([True] * 6 + [False] * 2)
    got, _ = nnls_gram(gram, b, constrained=cons)
    assert np.all(got[:, :6] >= 0)
    grad = b - got @ gram
    scale = np.abs(b).max()
    np.testing.assert_allclose(grad[:, 6:] / scale, 0, atol=1e-8)  # free columns optimal
    assert np.all(grad[:, :6][got[:, :6] == 0] <= 1e-8 * scale)  # KKT on the clipped ones
