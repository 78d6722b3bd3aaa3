"""Homographies: apply, fit from point pairs (normalised DLT, RANSAC), compare.

A homography here is a ``(3, 3)`` float64 matrix mapping scan pixel ``(col, row, 1)`` to
photo pixel ``(x, y, w)``; pixel centres are at integer coordinates in both images.
"""

from __future__ import annotations

import itertools

import numpy as np

from maxrf.errors import ParameterError

__all__ = ["apply", "corners_matrix", "fit_dlt", "fit_ransac", "local_scale", "scan_grid"]


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points ``(x, y)`` through a homography; returns ``(N, 2)``."""
    pts = np.asarray(pts, dtype=float).reshape(-1, 2)
    q = np.asarray(matrix, dtype=float) @ np.vstack([pts.T, np.ones(len(pts))])
    return (q[:2] / q[2]).T


def scan_grid(shape: tuple[int, int], step: int = 1) -> np.ndarray:
    """``(N, 2)`` ``(col, row)`` pixel centres of a ``(H, W)`` scan, every ``step`` pixels."""
    h, w = shape
    rows, cols = np.mgrid[0:h:step, 0:w:step]
    return np.column_stack([cols.ravel(), rows.ravel()]).astype(float)


def _normaliser(pts: np.ndarray) -> np.ndarray:
    c = pts.mean(axis=0)
    d = np.sqrt(((pts - c) ** 2).sum(axis=1)).mean()
    s = np.sqrt(2) / d if d > 0 else 1.0
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])


def fit_dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography ``dst ~ H src`` (normalised direct linear transform).

    Parameters
    ----------
    src, dst : numpy.ndarray
        ``(N, 2)`` corresponding points, N >= 4, not three on a line for N = 4.

    Returns
    -------
    numpy.ndarray
        ``(3, 3)`` matrix with ``H[2, 2] = 1``.

    Raises
    ------
    ParameterError
        Fewer than 4 pairs, or the points are degenerate (collinear).
    """
    src = np.asarray(src, dtype=float).reshape(-1, 2)
    dst = np.asarray(dst, dtype=float).reshape(-1, 2)
    if len(src) < 4 or len(src) != len(dst):
        raise ParameterError(f"a homography needs at least 4 point pairs, got {len(src)}")
    ts, td = _normaliser(src), _normaliser(dst)
    s = apply(ts, src)
    d = apply(td, dst)
    n = len(s)
    a = np.zeros((2 * n, 9))
    a[0::2, 0:2], a[0::2, 2] = s, 1
    a[0::2, 6:8], a[0::2, 8] = -d[:, :1] * s, -d[:, 0]
    a[1::2, 3:5], a[1::2, 5] = s, 1
    a[1::2, 6:8], a[1::2, 8] = -d[:, 1:] * s, -d[:, 1]
    _, sv, vt = np.linalg.svd(a)
    if sv[-2] < 1e-9 * sv[0]:
        raise ParameterError("the point pairs are degenerate (three or more on a line)")
    h = vt[-1].reshape(3, 3)
    h = np.linalg.inv(td) @ h @ ts
    if abs(h[2, 2]) < 1e-12:
        raise ParameterError("the point pairs give a degenerate homography")
    return h / h[2, 2]


def fit_ransac(src: np.ndarray, dst: np.ndarray, threshold: float, *, seed: int = 0,
               trials: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Robust homography: RANSAC over 4-pair samples, then least squares on the inliers.

    Parameters
    ----------
    src, dst : numpy.ndarray
        ``(N, 2)`` point pairs, N >= 5.
    threshold : float
        Inlier distance (``dst`` pixels).
    seed : int
        Random seed when the pairs are too many to try every 4-subset.
    trials : int
        Most samples tried.

    Returns
    -------
    matrix : numpy.ndarray
    inliers : numpy.ndarray
        ``(N,)`` bool.
    """
    src = np.asarray(src, dtype=float).reshape(-1, 2)
    dst = np.asarray(dst, dtype=float).reshape(-1, 2)
    n = len(src)
    if n < 5:
        return fit_dlt(src, dst), np.ones(n, dtype=bool)
    combos = list(itertools.combinations(range(n), 4)) if n <= 12 else None
    rng = np.random.default_rng(seed)
    best = np.zeros(n, dtype=bool)
    best_err = np.inf
    for t in range(len(combos) if combos is not None else trials):
        idx = list(combos[t]) if combos is not None else rng.choice(n, 4, replace=False)
        try:
            h = fit_dlt(src[idx], dst[idx])
        except ParameterError:
            continue
        err = np.linalg.norm(apply(h, src) - dst, axis=1)
        inl = err < threshold
        score = np.sum(np.minimum(err, threshold))
        if inl.sum() > best.sum() or (inl.sum() == best.sum() and score < best_err):
            best, best_err = inl, score
    if best.sum() < 4:
        raise ParameterError(
            f"no 4 point pairs agree within {threshold:.3g} photo pixels: check the point pairs")
    h = fit_dlt(src[best], dst[best])
    # one re-selection with the least-squares fit
    inl = np.linalg.norm(apply(h, src) - dst, axis=1) < threshold
    if inl.sum() >= 4 and not np.array_equal(inl, best):
        h, best = fit_dlt(src[inl], dst[inl]), inl
    return h, best


def corners_matrix(shape: tuple[int, int], base: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Homography through the scan corners mapped by ``base`` and moved by ``delta``.

    ``delta`` is ``(8,)``: x, y displacement (photo pixels) of the four corner pixel
    centres (0, 0), (W-1, 0), (W-1, H-1), (0, H-1): a well-scaled parametrisation for
    optimisers.
    """
    h, w = shape
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=float)
    dst = apply(base, src) + np.asarray(delta, dtype=float).reshape(4, 2)
    return fit_dlt(src, dst)


def local_scale(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Photo pixels per scan pixel at each ``(col, row)`` (square root of the Jacobian determinant)."""
    pts = np.asarray(pts, dtype=float).reshape(-1, 2)
    m = np.asarray(matrix, dtype=float)
    w = m[2, 0] * pts[:, 0] + m[2, 1] * pts[:, 1] + m[2, 2]
    det = np.linalg.det(m) / w ** 3
    return np.sqrt(np.abs(det))
