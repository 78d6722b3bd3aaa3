"""A Gaussian mixture (full covariances, EM) and principal axes, in numpy alone.

The classes of :func:`maxrf.decomposition.decompose` are fitted on a few thousand sampled
pixels of a handful of abundances: small problems for which scikit-learn's import (about
1 s and 70 MB with the parts of scipy it pulls in) cost more than the fits. The algorithm
is scikit-learn's ``GaussianMixture(covariance_type='full')`` (k-means start, EM until the
mean log-likelihood gains less than ``tol``, ``reg_covar`` added to every covariance, BIC
with the same parameter count); tests/decomposition/test_mixture.py checks it against
scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np

from maxrf.errors import ParameterError


def _kmeans(x: np.ndarray, n: int, rng: np.random.Generator, max_iter: int = 100) -> np.ndarray:
    """Labels of ``n`` k-means clusters: greedy k-means++ seeds (a few candidates per seed,
    the one that lowers the potential most, as scikit-learn), then Lloyd iterations."""
    sq = np.einsum("ij,ij->i", x, x)
    trials = 2 + int(math.log(n))
    centres = [x[int(rng.integers(x.shape[0]))]]
    closest = np.maximum(sq - 2 * x @ centres[0] + centres[0] @ centres[0], 0.0)
    for _ in range(1, n):
        total = float(closest.sum())
        if total <= 0:  # fewer distinct points than clusters
            centres.append(x[int(rng.integers(x.shape[0]))])
            continue
        cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        cand = np.minimum(cand, x.shape[0] - 1)
        dist = np.maximum(sq[None, :] - 2 * x[cand] @ x.T + sq[cand, None], 0.0)
        pot = np.minimum(closest[None, :], dist).sum(axis=1)
        best = int(np.argmin(pot))
        centres.append(x[cand[best]])
        closest = np.minimum(closest, dist[best])
    c = np.array(centres)
    labels = np.full(x.shape[0], -1)
    for _ in range(max_iter):
        d = sq[:, None] - 2 * x @ c.T + np.einsum("ij,ij->i", c, c)[None, :]
        new = np.argmin(d, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(n):
            sel = labels == j
            if sel.any():
                c[j] = x[sel].mean(axis=0)
    return labels


class GaussianMixture:
    """Gaussian mixture with full covariances fitted by EM (picklable, numpy only).

    Parameters
    ----------
    n_components : int
        Number of Gaussians.
    reg_covar : float
        Added to the diagonal of every covariance (keeps them positive definite).
    tol : float
        EM stops when the mean log-likelihood per sample gains less than this.
    max_iter : int
        Most EM iterations.
    seed : int
        Seed of the k-means start.

    Attributes
    ----------
    weights_, means_, covariances_ : numpy.ndarray
        ``(n,)``, ``(n, d)``, ``(n, d, d)`` after :meth:`fit`.
    """

    def __init__(self, n_components: int, *, reg_covar: float = 1e-6, tol: float = 1e-3,
                 max_iter: int = 100, seed: int = 0):
        if n_components < 1:
            raise ParameterError(f"n_components must be at least 1, got {n_components}")
        self.n_components, self.reg_covar, self.tol = int(n_components), reg_covar, tol
        self.max_iter, self.seed = max_iter, seed

    def _m_step(self, x: np.ndarray, resp: np.ndarray) -> None:
        nk = resp.sum(axis=0) + 10 * np.finfo(float).eps
        self.weights_ = nk / x.shape[0]
        self.means_ = (resp.T @ x) / nk[:, None]
        d = x.shape[1]
        cov = np.empty((self.n_components, d, d))
        for j in range(self.n_components):
            diff = x - self.means_[j]
            cov[j] = (resp[:, j, None] * diff).T @ diff / nk[j] + self.reg_covar * np.eye(d)
        self.covariances_ = cov
        # Cholesky factor of each precision matrix: log densities without inverting
        chol = np.linalg.cholesky(cov)
        eye = np.eye(d)
        self.precisions_cholesky_ = np.array([np.linalg.solve(c, eye).T for c in chol])

    def _weighted_log_prob(self, x: np.ndarray) -> np.ndarray:
        n, d = x.shape
        out = np.empty((n, self.n_components))
        for j in range(self.n_components):
            p = self.precisions_cholesky_[j]
            y = x @ p - self.means_[j] @ p
            log_det = float(np.sum(np.log(np.diag(p))))
            out[:, j] = -0.5 * (d * math.log(2 * math.pi) + np.einsum("ij,ij->i", y, y)) + log_det
        return out + np.log(self.weights_)[None, :]

    def _log_resp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        wlp = self._weighted_log_prob(x)
        top = wlp.max(axis=1, keepdims=True)
        norm = top[:, 0] + np.log(np.exp(wlp - top).sum(axis=1))
        return float(norm.mean()), wlp - norm[:, None]

    def fit(self, x: np.ndarray) -> GaussianMixture:
        """Fit to ``(n, d)`` samples (``n >= n_components``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < self.n_components:
            raise ParameterError(f"need (n, d) samples with n >= {self.n_components}, got {x.shape}")
        labels = _kmeans(x, self.n_components, np.random.default_rng(self.seed))
        resp = np.zeros((x.shape[0], self.n_components))
        resp[np.arange(x.shape[0]), labels] = 1.0
        self._m_step(x, resp)
        lower = -np.inf
        self.converged_ = False
        for _ in range(self.max_iter):
            prev = lower
            lower, log_resp = self._log_resp(x)
            self._m_step(x, np.exp(log_resp))
            if abs(lower - prev) < self.tol:
                self.converged_ = True
                break
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable Gaussian of each ``(n, d)`` sample."""
        return np.argmax(self._weighted_log_prob(np.asarray(x, dtype=np.float64)), axis=1)

    def score(self, x: np.ndarray) -> float:
        """Mean log-likelihood per sample."""
        return self._log_resp(np.asarray(x, dtype=np.float64))[0]

    def bic(self, x: np.ndarray) -> float:
        """Bayesian information criterion of the fit on ``x`` (lower is better)."""
        n, d = np.shape(x)
        params = self.n_components * (d * (d + 1) / 2 + d) + self.n_components - 1
        return -2.0 * self.score(x) * n + params * math.log(n)


def principal_axes(x: np.ndarray, n: int = 2) -> np.ndarray:
    """Coordinates of the rows of ``x`` on its ``n`` leading principal axes (centred PCA;
    each axis signed so that its largest loading is positive, as scikit-learn's PCA)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    # the centred scatter matrix without a centred copy of x
    vals, vecs = np.linalg.eigh(x.T @ x - x.shape[0] * np.outer(mean, mean))
    axes = vecs[:, np.argsort(vals)[::-1][:n]]
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
    axes = axes * np.where(signs == 0, 1.0, signs)
    return x @ axes - mean @ axes
