"""Solvers shared by the fits: batched non-negative least squares on the normal equations."""

from __future__ import annotations

import numpy as np

__all__ = ["nnls_gram"]


def _pattern_inverse(gram: np.ndarray, free_row: np.ndarray) -> np.ndarray:
    """``(m, m)`` matrix holding ``inv(gram[F, F])`` at ``(F, F)``, zeros elsewhere."""
    m = gram.shape[0]
    out = np.zeros((m, m))
    cols = np.flatnonzero(free_row)
    if cols.size:
        out[np.ix_(cols, cols)] = np.linalg.pinv(gram[np.ix_(cols, cols)], rcond=1e-12,
                                                 hermitian=True)
    return out


def _solve_patterns(gram: np.ndarray, b: np.ndarray, free: np.ndarray,
                    cache: dict | None = None) -> np.ndarray:
    """Solve ``gram[F, F] x_F = b_F`` (``x = 0`` off ``F``) per row for its free set ``F``:
    rows grouped by ``F``, one cached embedded inverse per distinct pattern."""
    n, m = b.shape
    out = np.zeros((n, m))
    if n == 0:
        return out
    packed = np.ascontiguousarray(np.packbits(free, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=first.size))])
    cache = {} if cache is None else cache
    for g in range(first.size):
        rows = order[bounds[g] : bounds[g + 1]]
        key = packed[first[g]].tobytes()
        inv = cache.get(key)
        if inv is None:
            inv = _pattern_inverse(gram, free[first[g]])
            if len(cache) < 100_000:
                cache[key] = inv
        out[rows] = b[rows] @ inv
    return out


def nnls_gram(gram: np.ndarray, b: np.ndarray, a0: np.ndarray, constrained: np.ndarray,
               max_iter: int | None = None, cache: dict | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Batched active-set NNLS on the normal equations ``min 1/2 a.G.a - b.a``.

    Only rows with a negative constrained amplitude in ``a0`` (the unconstrained solution)
    are refined. Each round drops the negative constrained columns of the rows that have
    some, adds back (one per row) the fixed column with the largest positive gradient of
    the rows that have none, and re-solves the changed rows grouped by free-set pattern;
    a row is done when it is feasible and satisfies the KKT conditions. Returns the
    amplitudes and the mask of refined rows.
    """
    a = a0.copy()
    n, m = a.shape
    cons = np.asarray(constrained, dtype=bool)
    need = np.flatnonzero(np.any(a[:, cons] < 0, axis=1))
    refined = np.zeros(n, dtype=bool)
    if need.size == 0:
        return a, refined
    refined[need] = True
    if max_iter is None:
        max_iter = 2 * m + 10
    x = a[need]
    bb = b[need]
    free = np.ones_like(x, dtype=bool)
    active = np.ones(need.size, dtype=bool)
    tol = 1e-9 * (1.0 + np.max(np.abs(bb), axis=1))
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xr = x[rows]
        fr = free[rows]
        neg = (xr < 0) & cons[None, :]
        has_neg = neg.any(axis=1)
        fr[has_neg] &= ~neg[has_neg]
        ok = np.flatnonzero(~has_neg)
        if ok.size:
            grad = bb[rows[ok]] - xr[ok] @ gram
            viol = (~fr[ok]) & cons[None, :] & (grad > tol[rows[ok], None])
            anyv = viol.any(axis=1)
            pick = np.where(viol, grad, -np.inf).argmax(axis=1)
            fr[ok[anyv], pick[anyv]] = True
            active[rows[ok[~anyv]]] = False
        free[rows] = fr
        todo = rows[active[rows]]
        if todo.size:
            x[todo] = _solve_patterns(gram, bb[todo], free[todo], cache)
    x[:, cons] = np.maximum(x[:, cons], 0.0)
    a[need] = x
    return a, refined


