"""Rank against the Poisson noise, and the non-negative factorisation of the sample."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from maxrf.errors import ParameterError

_NMF_PREFER_PURE = 0.005
_EQUAL_FIT = 0.03


def one_blas_thread() -> Any:
    """Small dense fits run faster on one BLAS thread than on threads that contend."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)




def poisson_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column scale factors ``g``, ``h`` with ``g_i h_j`` the independence model
    ``row_i col_j / total`` of the counts (floored away from zero)."""
    total = max(float(x.sum()), 1.0)
    g = np.maximum(x.sum(axis=1) / math.sqrt(total), 1e-6)
    hcol = np.maximum(x.sum(axis=0) / math.sqrt(total), 1e-6)
    return g, hcol


def estimate_rank(x: np.ndarray, max_rank: int = 12, margin: float = 1.1, seed: int = 0,
                  draws: int = 2) -> dict[str, Any]:
    """Number of components that rise above the Poisson noise of counts ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, m)`` counts (pixels x energy bins).
    max_rank : int
        Upper bound.
    margin : float
        A component counts when its singular value exceeds ``margin`` times the largest
        singular value of the simulated noise.
    seed : int
        Seed of the simulated noise.
    draws : int
        Noise matrices simulated per rank tried.

    Returns
    -------
    dict
        ``rank`` (int), ``singular_values`` (scaled, largest first, at most 2 x max_rank),
        ``noise_edge`` (largest singular value of the simulated noise at that rank).

    Notes
    -----
    The counts are scaled for Poisson noise (Keenan & Kotula 2004) so that the noise is
    about homoscedastic; then, for ``k = 1, 2, ...``, the rank-``k`` reconstruction is taken
    as the expected counts, Poisson noise is drawn from it and scaled the same way, and
    the rank is the first ``k`` whose next singular value does not rise above the largest
    singular value of that noise (a parametric version of the Marchenko-Pastur edge that
    needs no assumption of equal variances).
    """
    x = np.asarray(x, dtype=np.float64)
    n, m = x.shape
    if n < 2 or m < 2:
        raise ParameterError(f"need at least 2 x 2 counts to estimate a rank, got {x.shape}")
    g, hcol = poisson_scale(x)
    sg, sh = np.sqrt(g)[:, None], np.sqrt(hcol)[None, :]
    xs = x / sg / sh
    rng = np.random.default_rng(seed)
    with one_blas_thread():  # singular vectors from the small Gram matrix: m x m, m << n
        vals, vecs = np.linalg.eigh(xs.T @ xs)
        order = np.argsort(vals)[::-1]
        s = np.sqrt(np.clip(vals[order], 0.0, None))
        vecs = vecs[:, order]
        rank, edge = max_rank, float("nan")
        for k in range(1, min(max_rank, m - 1) + 1):
            mean = np.clip((xs @ vecs[:, :k]) @ vecs[:, :k].T * sg * sh, 0.0, None)
            edge = 0.0
            for _ in range(draws):  # the top of heteroscedastic noise varies: take the worst
                noise = (rng.poisson(mean) - mean) / sg / sh
                edge = max(edge, float(np.sqrt(max(np.linalg.eigvalsh(noise.T @ noise)[-1], 0.0))))
            if s[k] <= margin * edge:
                rank = k
                break
    return {"rank": int(rank), "singular_values": s[: 2 * max_rank], "noise_edge": edge}


def _spa(xs: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k purest pixels: successive projection (Gillis & Vavasis 2014) on the
    data denoised to its top-k subspace and normalised to unit sum, so that a pixel of one
    material sits at a vertex of the simplex of mixtures."""
    vals, vecs = np.linalg.eigh(xs.T @ xs)
    v = vecs[:, np.argsort(vals)[::-1][:k]]
    den = (xs @ v) @ v.T
    sums = den.sum(axis=1)
    ok = sums > np.quantile(sums, 0.05)  # the faintest pixels are mostly noise
    r = den[ok] / sums[ok, None]
    picked = []
    resid = r.copy()
    for _ in range(k):
        i = int(np.argmax(np.einsum("ij,ij->i", resid, resid)))
        picked.append(i)
        u = resid[i] / max(np.linalg.norm(resid[i]), 1e-12)
        resid -= np.outer(resid @ u, u)
    rows = den[np.flatnonzero(ok)[picked]]
    return np.maximum(rows, 1e-9 * max(float(rows.max()), 1e-12))


def fit_nmf(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """NMF of Poisson-scaled counts (Frobenius loss, coordinate descent): ``x ~ W @ H``.

    Two starts, the purest pixels (:func:`_spa`) and NNDSVDa; the one that reconstructs
    the sample better wins (NMF has local minima where one material takes two components).
    """
    from sklearn.decomposition import NMF

    g, hcol = poisson_scale(x)
    sg, sh = np.sqrt(g), np.sqrt(hcol)
    xs = (x / sg[:, None] / sh[None, :]).astype(np.float64)
    best, fits, errs = None, [], []
    with one_blas_thread():
        h0 = _spa(xs, k)
        w0 = np.maximum(np.linalg.lstsq(h0.T, xs.T, rcond=None)[0].T, 1e-9)
        for init, w_init, h_init in (("custom", w0, h0), ("nndsvda", None, None)):
            model = NMF(n_components=k, init=init, solver="cd", max_iter=400, tol=1e-4,
                        random_state=seed)
            ws = model.fit_transform(xs, W=w_init, H=h_init)
            fits.append(model.components_ * sh[None, :])
            errs.append(float(model.reconstruction_err_))
            # the purest-pixel start keeps materials apart where NMF is not unique (brass
            # = Cu + Zn fits as well as a Cu and a Zn component): another start must fit
            # clearly better to win
            err = model.reconstruction_err_ * (1.0 if best is None else 1.0 + _NMF_PREFER_PURE)
            if best is None or err < best[0]:
                best = (model.reconstruction_err_, ws, model.components_)
    # two different answers that fit about equally well: the data do not decide between them
    # (an answer that fits clearly worse is only a local minimum of the other start)
    equal = abs(errs[0] - errs[1]) <= _EQUAL_FIT * min(errs)
    return best[1] * sg[:, None], best[2] * sh[None, :], {
        "agreement": agreement(*fits) if equal else 1.0,
        "fit_errors": errs}


def agreement(h1: np.ndarray, h2: np.ndarray) -> float:
    """How well two sets of component spectra match: the worst, over the components of
    either set, of the best cosine with a component of the other (1 = the same set)."""
    a = h1 / np.maximum(np.linalg.norm(h1, axis=1), 1e-12)[:, None]
    b = h2 / np.maximum(np.linalg.norm(h2, axis=1), 1e-12)[:, None]
    c = a @ b.T
    return float(min(c.max(axis=1).min(), c.max(axis=0).min()))


#: fitting methods: ``name -> f(counts (n, nb), k, seed) -> (W (n, k), H (k, nb), info)``;
#: ``info['agreement']`` (0..1) says how far two starts of the fit agree
METHODS: dict[str, Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray, dict[str, float]]]] = {
    "nmf": fit_nmf,
}


