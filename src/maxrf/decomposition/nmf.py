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
    total = max(float(x.sum(dtype=np.float64)), 1.0)
    g = np.maximum(x.sum(axis=1, dtype=np.float64) / math.sqrt(total), 1e-6)
    hcol = np.maximum(x.sum(axis=0, dtype=np.float64) / math.sqrt(total), 1e-6)
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
    x = np.asarray(x)
    if x.ndim != 2 or min(x.shape) < 2:
        raise ParameterError(f"need at least 2 x 2 counts to estimate a rank, got {x.shape}")
    m = x.shape[1]
    g, hcol = poisson_scale(x)
    sg, sh = np.sqrt(g), np.sqrt(hcol)
    xs = np.divide(x, sg[:, None], dtype=np.float64)  # counts of any dtype, one float64 copy
    xs /= sh[None, :]
    rng = np.random.default_rng(seed)
    with one_blas_thread():  # singular vectors from the small Gram matrix: m x m, m << n
        s, vecs = _eig(xs)
        rank, edge = max_rank, float("nan")
        for k in range(1, min(max_rank, m - 1) + 1):
            edge = 0.0
            for d in range(draws):  # the top of heteroscedastic noise varies: take the worst
                if d and s[k] > 1.5 * margin * edge:
                    break  # far above the first draw: another draw cannot change the answer
                gram = _noise_gram(xs, sg, sh, vecs[:, :k], rng)
                edge = max(edge, float(np.sqrt(max(np.linalg.eigvalsh(gram)[-1], 0.0))))
            if s[k] <= margin * edge:
                rank = k
                break
    return {"rank": int(rank), "singular_values": s[: 2 * max_rank], "noise_edge": edge}


#: rows of the sample simulated at a time (the Gram matrix is summed over the slices)
_NOISE_ROWS = 1024


def _noise_gram(xs: np.ndarray, sg: np.ndarray, sh: np.ndarray, v: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """``noise.T @ noise`` of scaled Poisson noise drawn around the rank-``k`` reconstruction
    ``xs @ v @ v.T`` (unscaled to counts by ``sg_i sh_j``), a slice of rows at a time so
    that the expected counts, the draws and the noise are never held for the whole sample
    (the draws come in the same order as in one draw over all rows)."""
    m = xs.shape[1]
    gram = np.zeros((m, m), dtype=np.float64)
    for r0 in range(0, xs.shape[0], _NOISE_ROWS):
        sl = slice(r0, r0 + _NOISE_ROWS)
        scale = sg[sl, None] * sh[None, :]
        mean = np.clip((xs[sl] @ v) @ v.T * scale, 0.0, None)
        noise = ((rng.poisson(mean) - mean) / scale).astype(np.float32)
        gram += noise.T @ noise
    return gram


def _eig(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values (largest first) and right singular vectors of ``xs`` from its
    small ``m x m`` Gram matrix."""
    vals, vecs = np.linalg.eigh(xs.T @ xs)
    order = np.argsort(vals)[::-1]
    return np.sqrt(np.clip(vals[order], 0.0, None)), vecs[:, order]


def _spa(xs: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k purest pixels: successive projection (Gillis & Vavasis 2014) on the
    data denoised to its top-k subspace (right singular vectors ``v``) and normalised to
    unit sum, so that a pixel of one material sits at a vertex of the simplex of mixtures.

    The denoised rows ``(xs @ v) @ v.T`` lie in the span of the orthonormal ``v``: the
    projections run on their ``k`` coordinates ``xs @ v`` (same norms, same picks), and only
    the picked rows are expanded to the energy bins.
    """
    v = v[:, :k]
    coords = xs @ v
    sums = coords @ v.sum(axis=0)  # the sums of the denoised rows over the bins
    ok = sums > np.quantile(sums, 0.05)  # the faintest pixels are mostly noise
    resid = coords[ok] / sums[ok, None]
    picked = []
    for _ in range(k):
        i = int(np.argmax(np.einsum("ij,ij->i", resid, resid)))
        picked.append(i)
        u = resid[i] / max(np.linalg.norm(resid[i]), 1e-12)
        resid -= np.outer(resid @ u, u)
    rows = coords[np.flatnonzero(ok)[picked]] @ v.T
    return np.maximum(rows, 1e-9 * max(float(rows.max()), 1e-12))


def _nndsvda(p: np.ndarray, s: np.ndarray, v: np.ndarray, k: int, fill: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """NNDSVD start (Boutsidis & Gallopoulos 2008) from ``p = xs @ v`` and the singular
    values ``s``; zeros filled with the data mean (the 'a' variant, as scikit-learn)."""
    n, m = p.shape[0], v.shape[0]
    w, h = np.zeros((n, k)), np.zeros((k, m))
    for j in range(k):
        x, y = p[:, j] / max(s[j], 1e-12), v[:, j]
        if j == 0:  # the leading singular pair has one sign (Perron-Frobenius)
            xs_, ys_, sigma = np.abs(x), np.abs(y), 1.0
        else:
            pos, neg = (np.maximum(x, 0), np.maximum(y, 0)), (np.maximum(-x, 0), np.maximum(-y, 0))
            norms = [(np.linalg.norm(a), np.linalg.norm(b)) for a, b in (pos, neg)]
            i = 0 if norms[0][0] * norms[0][1] >= norms[1][0] * norms[1][1] else 1
            (a, b), (na, nb) = (pos, neg)[i], norms[i]
            xs_, ys_, sigma = a / max(na, 1e-12), b / max(nb, 1e-12), na * nb
        lam = np.sqrt(s[j] * sigma)
        w[:, j], h[j] = lam * xs_, lam * ys_
    w[w < 1e-6] = fill
    h[h < 1e-6] = fill
    return w, h


def _hals(p: np.ndarray, q: np.ndarray, w: np.ndarray, h: np.ndarray, max_iter: int = 400,
          tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Frobenius NMF ``p @ q.T ~ w @ h`` by HALS (coordinate descent on the columns of ``w``
    and rows of ``h``, as scikit-learn's ``cd`` solver), on data given in compressed form.

    The data enter only through ``X @ h.T = p @ (q.T @ h.T)`` and ``w.T @ X = (w.T @ p) @ q.T``
    (Zhou, Cichocki & Xie, IEEE TSP 60 (2012) 2928): with ``p`` (n x r) and ``q`` (m x r)
    of rank ``r`` a little above ``k`` an iteration costs ``(n + m) r k`` instead of ``n m k``.
    Stops when the projected gradient has fallen to ``tol`` times its first value.
    """
    w, h = w.copy(), h.copy()
    k = w.shape[1]
    first = None
    for _ in range(max_iter):
        viol = 0.0
        hht, xht = h @ h.T, p @ (q.T @ h.T)
        for j in range(k):
            grad = w @ hht[:, j] - xht[:, j]
            viol += float(np.abs(np.where(w[:, j] > 0, grad, np.minimum(grad, 0.0))).sum())
            if hht[j, j] > 0:
                w[:, j] = np.maximum(w[:, j] - grad / hht[j, j], 0.0)
        wtw, wtx = w.T @ w, (w.T @ p) @ q.T
        for j in range(k):
            grad = wtw[j] @ h - wtx[j]
            viol += float(np.abs(np.where(h[j] > 0, grad, np.minimum(grad, 0.0))).sum())
            if wtw[j, j] > 0:
                h[j] = np.maximum(h[j] - grad / wtw[j, j], 0.0)
        if first is None:
            first = max(viol, 1e-300)
        elif viol / first <= tol:
            break
    return w, h


#: rank of the compressed data the factorisation runs on, beyond the number of components
_EXTRA_RANK = 24


def fit_nmf(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """NMF of Poisson-scaled counts (Frobenius loss, coordinate descent): ``x ~ W @ H``.

    Two starts, the purest pixels (:func:`_spa`) and NNDSVDa; the one that reconstructs
    the sample better wins (NMF has local minima where one material takes two components).
    Both run on the data projected onto its leading ``k + 24`` singular vectors (what lies
    beyond is Poisson noise, :func:`estimate_rank`), which makes an iteration ~10x cheaper;
    the reconstruction errors that pick the winner are those of the full data.
    """
    del seed  # both starts are deterministic
    g, hcol = poisson_scale(x)
    sg, sh = np.sqrt(g), np.sqrt(hcol)
    xs = np.divide(x, sg[:, None], dtype=np.float64)  # counts of any dtype, one float64 copy
    xs /= sh[None, :]
    best, fits, errs = None, [], []
    with one_blas_thread():
        s, v = _eig(xs)
        r = min(xs.shape[0], v.shape[1], k + _EXTRA_RANK)
        q = v[:, :r]
        p = xs @ q
        h0 = _spa(xs, v, k)
        # least squares xs ~ w0 @ h0 through the small pseudo-inverse of h0 (lstsq on
        # xs.T would copy the whole sample)
        w0 = np.maximum(xs @ np.linalg.pinv(h0, rcond=np.finfo(float).eps * max(h0.shape)), 1e-9)
        norm2 = float(np.einsum("ij,ij->", xs, xs))
        for w_init, h_init in ((w0, h0), _nndsvda(p, s, v, k, float(xs.mean()))):
            ws, hs = _hals(p, q, w_init, h_init)
            # the error against the full data, not its projection
            err = math.sqrt(max(norm2 - 2.0 * float(np.einsum("ij,ij->", ws.T @ xs, hs))
                                + float(np.einsum("ij,ij->", ws.T @ ws, hs @ hs.T)), 0.0))
            fits.append(hs * sh[None, :])
            errs.append(err)
            # the purest-pixel start keeps materials apart where NMF is not unique (brass
            # = Cu + Zn fits as well as a Cu and a Zn component): another start must fit
            # clearly better to win
            if best is None or err * (1.0 + _NMF_PREFER_PURE) < best[0]:
                best = (err, ws, hs)
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


