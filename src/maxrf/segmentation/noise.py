"""Input checks, the map's noise model (Poisson envelope) and its ground (paper) level."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from maxrf.arrays import as_map
from maxrf.errors import ParameterError
from maxrf.types import ArrayLike

#: tile side for the local steps (a halo of the line length is added on every side)
TILE = 256


def _as_map(element_map: ArrayLike) -> np.ndarray:
    return as_map(element_map, "element_map", min_side=8, purpose="segment")


def _positive(name: str, value: Any, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > lo):
        raise ParameterError(f"{name} must be a finite number > {lo:g}, got {value}")
    return float(value)


def _smoothing_factor(sigma: float) -> float:
    """Noise std after a Gaussian filter of ``sigma`` px, per unit of white pixel noise."""
    k = np.zeros((31, 31))
    k[15, 15] = 1.0
    return float(np.sqrt(np.sum(ndi.gaussian_filter(k, sigma) ** 2)))


#: neighbour offsets (row, col) of the pixel differences: right, down and both diagonals
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _robust_sigma(d: np.ndarray) -> float:
    """Standard deviation of the bulk of ``d``: clipped at 3.5 robust sigmas, corrected.

    Smooth in the data (unlike the median absolute deviation of integer counts, which is
    quantised to whole counts).
    """
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med)))
    s0 = max(1.4826 * mad, 0.5 * float(np.std(d)) if mad == 0 else 0.0, 1e-12)
    keep = np.abs(d - med) < 3.5 * s0
    return float(np.std(d[keep]) / 0.99694) if keep.sum() > 2 else s0


def noise_model(element_map: Any, n_bins: int = 16, max_samples: int = 100_000
                ) -> tuple[float, float, dict[str, Any]]:
    """Variance of a map's pixels as a function of their level: ``var = a + b * level``.

    Parameters
    ----------
    element_map : array_like, shape (H, W)
        The map (map units, e.g. counts).
    n_bins : int
        Level bins (equal numbers of pixels).
    max_samples : int
        Pixel pairs used at most per direction (a regular subsample beyond that).

    Returns
    -------
    a, b : float
        Variance at level 0 (map units squared) and per unit of level (1 for Poisson counts).
    info : dict
        ``levels``, ``sigmas`` per bin and the fit's relative residual.

    Notes
    -----
    In each bin of the smoothed level the pixel noise is estimated from the differences of
    neighbouring pixels (horizontal, vertical and both diagonals, variance ``2 var``), in the
    direction with the smallest robust spread: along a stroke that is pure noise, while
    across it the stroke's edges inflate the spread. ``a`` and ``b`` are fitted by
    non-negative least squares.
    """
    from scipy.optimize import nnls

    m = _as_map(element_map)
    fill = np.where(np.isnan(m), np.nanmedian(m), m)
    level = ndi.gaussian_filter(fill, 1.5)
    H, W = m.shape
    step = max(1, int(math.sqrt(H * W / max_samples)))
    rows = np.arange(0, H - 1, step)[:, None]
    cols = np.arange(1, W - 1, step)[None, :]
    lev = level[rows, cols].ravel()  # a regular subsample of pixels and their neighbours
    diffs = [(fill[rows + dr, cols + dc] - fill[rows, cols]).ravel() for dr, dc in _DIRECTIONS]
    edges = np.unique(np.quantile(lev, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, lev, side="right") - 1, 0, edges.size - 2)
    levels, sigmas, counts = [], [], []
    for k in range(edges.size - 1):
        sel = which == k
        if sel.sum() < 50:
            continue
        s = min(_robust_sigma(d[sel]) for d in diffs) / math.sqrt(2.0)
        levels.append(float(np.median(lev[sel])))
        sigmas.append(s)
        counts.append(int(sel.sum()))
    lv_arr, sg_arr = np.array(levels), np.array(sigmas)
    if lv_arr.size == 0:
        s = _robust_sigma(diffs[0]) / math.sqrt(2.0)
        return s * s, 0.0, {"levels": [], "sigmas": [], "fit_residual": 0.0}
    A = np.c_[np.ones_like(lv_arr), np.maximum(lv_arr, 0.0)]
    wts = np.sqrt(np.array(counts, dtype=float)) / np.maximum(sg_arr**2, 1e-12)
    (a, b), _ = nnls(A * wts[:, None], sg_arr**2 * wts)
    pred = np.sqrt(np.maximum(A @ np.array([a, b]), 1e-24))
    resid = float(np.median(np.abs(pred - sg_arr) / np.maximum(sg_arr, 1e-12)))
    if a <= 0 and b <= 0:  # a constant map: no noise seen
        a = float(np.median(sg_arr) ** 2) or 1e-12
    return float(a), float(b), {"levels": levels, "sigmas": sigmas, "fit_residual": resid}


def _interp_matrix(n: int, centres: np.ndarray) -> np.ndarray:
    """(n, k) weights of linear interpolation at 0..n-1 between values at ``centres``
    (constant beyond the first and last)."""
    pos = np.interp(np.arange(n), centres, np.arange(centres.size)) if centres.size > 1 \
        else np.zeros(n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, centres.size - 1)
    frac = pos - lo
    w = np.zeros((n, centres.size))
    w[np.arange(n), lo] += 1.0 - frac
    w[np.arange(n), hi] += frac
    return w


def _paper_level(m: np.ndarray, block: int) -> np.ndarray:
    """Smooth ground level: median of ``block`` x ``block`` blocks, bilinearly interpolated."""
    H, W = m.shape
    nr, nc = max(1, round(H / block)), max(1, round(W / block))
    re = np.linspace(0, H, nr + 1).astype(int)
    ce = np.linspace(0, W, nc + 1).astype(int)
    coarse = np.empty((nr, nc))
    for i in range(nr):
        for j in range(nc):
            v = m[re[i]:re[i + 1], ce[j]:ce[j + 1]]
            coarse[i, j] = np.nanmedian(v) if np.isfinite(v).any() else np.nan
    if np.isnan(coarse).all():
        coarse[:] = 0.0
    coarse = np.where(np.isnan(coarse), np.nanmedian(coarse), coarse)
    rc = (re[:-1] + re[1:] - 1) / 2.0
    cc = (ce[:-1] + ce[1:] - 1) / 2.0
    # bilinear interpolation is separable: (H, nr) @ coarse @ (nc, W)
    return (_interp_matrix(H, rc) @ coarse @ _interp_matrix(W, cc).T).astype(np.float32)


