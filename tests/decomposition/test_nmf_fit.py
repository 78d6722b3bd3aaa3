"""The sample factorisation against data of known factors."""

from __future__ import annotations

import numpy as np

from maxrf.decomposition.nmf import fit_nmf


def _separable(n: int, m: int, k: int, counts: float, seed: int):
    """Poisson counts of k peaked spectra mixed with sparse abundances, with a pure pixel
    of each spectrum (so that the factors are unique up to order and scale)."""
    rng = np.random.default_rng(seed)
    h = np.zeros((k, m))
    for i in range(k):
        h[i] = 0.02 + np.exp(-0.5 * ((np.arange(m) - (i + 0.5) * m / k) / 4.0) ** 2)
    w = rng.gamma(0.5, 1.0, size=(n, k)) * (rng.random((n, k)) < 0.5)
    w[:k] = np.eye(k) * 3.0
    mean = w @ h
    mean *= counts / mean.mean()
    return rng.poisson(mean).astype(float), w, h


def _best_cosines(found: np.ndarray, true: np.ndarray) -> np.ndarray:
    a = found / np.linalg.norm(found, axis=1, keepdims=True)
    b = true / np.linalg.norm(true, axis=1, keepdims=True)
    return (b @ a.T).max(axis=1)


def test_factors_of_separable_counts_are_found():
    x, _w, h = _separable(3000, 200, 5, counts=40.0, seed=3)
    w_fit, h_fit, info = fit_nmf(x, 5, 0)
    assert w_fit.shape == (3000, 5) and h_fit.shape == (5, 200)
    assert (w_fit >= 0).all() and (h_fit >= 0).all()
    assert _best_cosines(h_fit, h).min() > 0.99
    # the reconstruction is as close to the counts as the Poisson noise allows
    resid = x - w_fit @ h_fit
    assert np.sum(resid**2) < 1.1 * np.sum(x)  # Poisson: E|x - mean|^2 = sum of the means
    assert len(info["fit_errors"]) == 2 and info["agreement"] > 0.9


def test_noise_free_factors_reconstruct_exactly():
    x, _w, h = _separable(800, 120, 3, counts=1e6, seed=5)
    exact = np.round(x / 1e3)  # large counts: the Poisson noise is ~0.1 % of them
    w_fit, h_fit, _ = fit_nmf(exact, 3, 0)
    assert np.linalg.norm(exact - w_fit @ h_fit) < 0.01 * np.linalg.norm(exact)
    assert _best_cosines(h_fit, h).min() > 0.999
