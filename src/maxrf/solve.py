"""Solvers shared by the fits: batched non-negative least squares on the normal equations."""

from __future__ import annotations

import numpy as np

__all__ = ["nnls_gram"]

#: up to this many problems (all columns constrained, no start given) are solved one by
#: one with Lawson-Hanson; more go through the batched active set
_FEW = 8


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


def nnls_gram(gram: np.ndarray, b: np.ndarray, a0: np.ndarray | None = None,
              constrained: np.ndarray | None = None, max_iter: int | None = None,
              cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares on the normal equations: ``min 1/2 a.G.a - b.a``.

    The one NNLS solver of the fits (per-pixel element maps, identification): the least
    squares problem ``min |A a - y|**2`` given only ``G = A.T A`` and ``b = A.T y``, with
    ``a >= 0`` on the ``constrained`` columns (the others free).

    Two strategies, one result. A few problems with every column constrained (the
    identification's fits): Lawson-Hanson (``scipy.optimize.nnls``) on the Cholesky factor
    of the unit-diagonal Gram matrix (a 1e-10 ridge keeps it definite). Many problems (a
    block of pixels): a batched active set, where only rows with a negative constrained
    amplitude in ``a0`` (the unconstrained solution) are refined. Each round drops the
    negative constrained columns of the rows that have some, adds back (one per row) the
    fixed column with the largest positive gradient of the rows that have none, and
    re-solves the changed rows grouped by free-set pattern (one cached inverse per
    pattern); a row is done when it is feasible and satisfies the KKT conditions. Both
    equal ``scipy.optimize.nnls`` to 1e-8 on random problems (tests/test_solve.py).

    Parameters
    ----------
    gram : numpy.ndarray
        ``(m, m)`` symmetric positive semi-definite ``A.T A``.
    b : numpy.ndarray
        ``(n, m)`` right-hand sides ``A.T y`` of ``n`` problems, or ``(m,)`` for one.
    a0 : numpy.ndarray, optional
        ``(n, m)`` unconstrained solutions (default computed here).
    constrained : numpy.ndarray, optional
        ``(m,)`` bool, columns kept non-negative (default all).
    max_iter : int, optional
        Rounds before the remaining negatives are clipped (default ``2 m + 10``).
    cache : dict, optional
        Pattern -> inverse cache shared between calls with the same ``gram``.

    Returns
    -------
    amplitudes : numpy.ndarray
        ``(n, m)`` (or ``(m,)``) solution.
    refined : numpy.ndarray
        ``(n,)`` (or scalar) bool: the row needed the active-set refinement.
    """
    one = np.ndim(b) == 1
    bb = np.atleast_2d(np.asarray(b, dtype=float))
    m = bb.shape[1]
    constrained = (np.ones(m, dtype=bool) if constrained is None
                   else np.asarray(constrained, dtype=bool))
    d = np.sqrt(np.maximum(np.diag(gram), 1e-300))
    unit = float(np.max(np.abs(d - 1.0), initial=0.0)) <= 1e-12
    if not unit:  # unit diagonal: the pattern inverses are well scaled
        gram = gram / d[:, None] / d[None, :]
        bb = bb / d[None, :]
    if a0 is None and bb.shape[0] <= _FEW and constrained.all():
        a = np.array([_lawson_hanson(gram, row) for row in bb]).reshape(bb.shape)
        refined = np.any(a <= 0.0, axis=1)
    else:
        if a0 is None:
            a0 = bb @ np.linalg.pinv(gram, rcond=1e-12, hermitian=True)
        else:
            a0 = np.atleast_2d(a0) if unit else np.atleast_2d(a0) * d[None, :]
        a, refined = _active_set(gram, bb, a0, constrained, max_iter, cache)
    if not unit:
        a = a / d[None, :]
    return (a[0], refined[0]) if one else (a, refined)


def _lawson_hanson(gram: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One problem, all columns constrained, on a unit-diagonal ``gram``."""
    from scipy import linalg, optimize  # only here: the batched solver is numpy alone

    n = b.size
    if n == 0:
        return np.zeros(0)
    g = gram + np.eye(n) * 1e-10
    try:
        low = linalg.cholesky(g, lower=True)
    except linalg.LinAlgError:
        low = linalg.cholesky(g + np.eye(n) * 1e-6, lower=True)
    rhs = linalg.solve_triangular(low, b, lower=True)
    x, _ = optimize.nnls(low.T, rhs, maxiter=50 * n)
    return x


def _active_set(gram: np.ndarray, b: np.ndarray, a0: np.ndarray, constrained: np.ndarray,
                max_iter: int | None, cache: dict | None) -> tuple[np.ndarray, np.ndarray]:
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


