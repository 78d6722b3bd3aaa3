"""Homography fitting against matrices built independently (exact pairs, outliers, degenerate)."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.errors import ParameterError
from maxrf.registration.homography import apply, fit_dlt, fit_ransac, local_scale


def _truth(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    th = np.radians(rng.uniform(-5, 5))
    s = rng.uniform(2, 6)
    return np.array([[s * np.cos(th), -s * np.sin(th), rng.uniform(50, 200)],
                     [s * np.sin(th), s * np.cos(th), rng.uniform(50, 200)],
                     [rng.uniform(-4e-4, 4e-4), rng.uniform(-4e-4, 4e-4), 1.0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_four_exact_pairs_recover_the_matrix(seed):
    h = _truth(seed)
    src = np.array([[0, 0], [79, 3], [75, 63], [2, 60]], dtype=float)
    dst = (h @ np.c_[src, np.ones(4)].T)
    dst = (dst[:2] / dst[2]).T
    m = fit_dlt(src, dst)
    grid = np.mgrid[0:64:4, 0:80:4].reshape(2, -1).T[:, ::-1].astype(float)
    assert np.abs(apply(m, grid) - apply(h, grid)).max() < 1e-6


def test_ransac_rejects_outliers():
    h = _truth(5)
    rng = np.random.default_rng(5)
    src = rng.uniform(0, 80, (12, 2))
    dst = apply(h, src) + rng.normal(0, 0.2, (12, 2))
    dst[[2, 7]] += [40, -25]
    m, inl = fit_ransac(src, dst, threshold=3.0)
    assert inl.sum() == 10 and not inl[2] and not inl[7]
    assert np.abs(apply(m, src[inl]) - apply(h, src[inl])).max() < 0.5


def test_degenerate_points_are_refused():
    with pytest.raises(ParameterError, match="at least 4"):
        fit_dlt(np.zeros((3, 2)), np.zeros((3, 2)))
    line = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=float)
    with pytest.raises(ParameterError, match="degenerate"):
        fit_dlt(line, line * 2)


def test_local_scale_of_a_similarity():
    m = np.array([[3.0, -0.4, 10], [0.4, 3.0, 5], [0, 0, 1]])
    assert np.allclose(local_scale(m, np.array([[0, 0], [50, 20]])), np.hypot(3.0, 0.4))
