"""Local alignment: how far the registration is off over the scan area, estimated without the truth.

A homography fitted to the whole scan can be right at the centre and wrong at the corners
(a perspective term pulled by one textured region, an optimiser that stopped early). The
global metric cannot see that: it is dominated by the well-aligned bulk. This check looks
at windows spread over the scan (a 3 x 3 grid, each a ``frac`` of the scan per axis, the
outer ones touching the edges) and registers each window on its own with a translation of
the photo (the colour-fit metric restricted to the window), giving a local displacement and
its standard error. A displacement field fitted to the windows (weighted by their precision;
the first-order difference of two homographies, 8 parameters) is then evaluated at the
scan's corners, where a wrong warp is worst; its largest length plus one standard error of
the prediction is the estimated maximum error (scan pixels). Windows without structure
(paper only) have a flat metric, a large standard error, and little weight: they neither
raise nor lower the estimate.

Standard error of a window's shift: the metric is the share of variance explained (R^2) by a
least-squares fit, so near its optimum ``var(shift) = 2 (1 - R^2) / (N_eff |d^2 R^2 / d shift^2|)``
(Gauss-Newton), with ``N_eff`` the window's pixels divided by :data:`CORRELATION_AREA`
because the residuals are spatially correlated (smoothing, JPEG blocks, the colour model's
own misfit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maxrf.io.photo import Photo
from maxrf.registration import auto

__all__ = ["LocalAlignment", "local_alignment", "window_shifts"]

#: scan pixels over which the residuals of the colour fit are correlated (see module doc)
CORRELATION_AREA = 4.0
#: shift (scan pixels) at which the metric's curvature is measured
_STEP = 0.5
#: precision floor: no window is trusted to better than this (scan pixels)
_FLOOR = 0.1


@dataclass
class LocalAlignment:
    """Local displacements of a registration and the maximum error they imply.

    Attributes
    ----------
    centres : numpy.ndarray
        ``(k, 2)`` scan ``(col, row)`` of the windows' centres.
    shifts : numpy.ndarray
        ``(k, 2)`` displacement (scan pixels) that best aligns each window.
    stderr : numpy.ndarray
        ``(k,)`` standard error of each window's displacement (scan pixels, per axis).
    corner_error : numpy.ndarray
        ``(4,)`` length of the fitted displacement field at the scan corners (scan pixels).
    max_error : float
        Estimated maximum error over the scan area (scan pixels): the largest corner
        displacement plus one standard error of its prediction.
    """

    centres: np.ndarray
    shifts: np.ndarray
    stderr: np.ndarray
    corner_error: np.ndarray
    max_error: float


def _window_shift(metric: auto.FitMetric, matrix: np.ndarray, n_pixels: int) -> tuple[np.ndarray, float]:
    """Best translation of one window (scan pixels) and its standard error."""
    from scipy.optimize import minimize

    def cost(p: np.ndarray) -> float:
        return -metric(matrix, (float(p[0]), float(p[1])))

    # a local search (a simplex of a third of a pixel): Powell's line searches bracket far
    # and can land on another window's structure, a pixel or two away
    simplex = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.3]])
    res = minimize(cost, np.zeros(2), method="Nelder-Mead", bounds=[(-3, 3)] * 2,
                   options={"initial_simplex": simplex, "xatol": 1e-2, "fatol": 1e-8, "maxfev": 120})
    d = res.x
    f0 = -res.fun
    if f0 <= 0:
        return d, np.inf
    curv = []
    for e in ((_STEP, 0.0), (0.0, _STEP)):
        fp = metric(matrix, (d[0] + e[0], d[1] + e[1]))
        fm = metric(matrix, (d[0] - e[0], d[1] - e[1]))
        curv.append(max((2 * f0 - fp - fm) / _STEP ** 2, 1e-12))
    n_eff = max(n_pixels / CORRELATION_AREA, 1.0)
    se = np.sqrt(2 * max(1 - f0, 1e-6) / (n_eff * np.asarray(curv)))
    return d, float(np.sqrt(np.mean(se ** 2)))


def window_shifts(scan: np.ndarray, chans: np.ndarray, ph: Photo, matrix: np.ndarray,
                  n: int = 3, frac: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align ``n`` x ``n`` windows of the scan on their own (translation each).

    Returns the windows' centres ``(k, 2)`` (scan col, row), their best shifts ``(k, 2)``
    and the shifts' standard errors ``(k,)`` (scan pixels).
    """
    from maxrf.registration.register import fit_metric

    h, w = scan.shape[-2:]
    rows, cols = np.mgrid[0:h, 0:w]
    wh, ww = frac * h, frac * w
    centres, shifts, stderr = [], [], []
    for cy in np.linspace(wh / 2, h - wh / 2, n) - 0.5:
        for cx in np.linspace(ww / 2, w - ww / 2, n) - 0.5:
            mask = (np.abs(rows - cy) <= wh / 2) & (np.abs(cols - cx) <= ww / 2)
            metric = fit_metric(scan, chans, ph, matrix, mask=mask)
            d, se = _window_shift(metric, matrix, int(mask.sum()))
            centres.append((cx, cy))
            shifts.append(d)
            stderr.append(se)
    return np.asarray(centres), np.asarray(shifts), np.asarray(stderr)


def local_alignment(scan: np.ndarray, chans: np.ndarray, ph: Photo, matrix: np.ndarray,
                    frac: float = 0.4) -> LocalAlignment:
    """Estimate a registration's error over the scan area from windows aligned on their own.

    Parameters
    ----------
    scan : numpy.ndarray
        ``(H, W)`` normalised scan image.
    chans : numpy.ndarray
        ``(4, h, w)`` photo absorbances (grey, R, G, B) of ``ph``.
    ph : Photo
    matrix : numpy.ndarray
        The registration judged (scan -> original photo pixels).
    frac : float
        Window side as a share of the scan's side.

    Returns
    -------
    LocalAlignment
    """
    from maxrf.registration.register import fit_metric

    h, w = scan.shape[-2:]
    if scan.ndim == 3 and len(scan) > 3:
        # tens of separate scan images would overfit a window's few hundred pixels (a
        # flatter, noisier optimum): the windows fit the three colours the whole scan predicts
        pred = fit_metric(scan, chans, ph, matrix).colour_images(matrix)
        scan = np.stack([auto.normalise(p) for p in pred])
    c, s, se = window_shifts(scan, chans, ph, matrix, 3, frac)
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=float)
    field, pred_se = _displacement_field(c, s, se, corners, (w, h))
    corner_error = np.linalg.norm(field, axis=1)
    return LocalAlignment(centres=c, shifts=s, stderr=se, corner_error=corner_error,
                          max_error=float(np.max(corner_error + pred_se)))


def _displacement_field(c: np.ndarray, s: np.ndarray, se: np.ndarray, at: np.ndarray,
                  size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares projective-like field through the shifts, evaluated at ``at``.

    ``d(x) = a + B x + (p . x) x``: the first-order difference of two homographies (8
    parameters). Returns the field ``(n, 2)`` and the standard error of its length ``(n,)``.
    Coordinates are centred and scaled by the scan's size so the fit is well conditioned.
    """
    half = np.array(size, dtype=float) / 2

    def design(x: np.ndarray) -> np.ndarray:
        u = (x - half) / half
        n = len(u)
        a = np.zeros((2 * n, 8))
        a[0::2, 0], a[0::2, 1], a[0::2, 2] = 1, u[:, 0], u[:, 1]
        a[1::2, 3], a[1::2, 4], a[1::2, 5] = 1, u[:, 0], u[:, 1]
        a[0::2, 6], a[0::2, 7] = u[:, 0] ** 2, u[:, 0] * u[:, 1]
        a[1::2, 6], a[1::2, 7] = u[:, 0] * u[:, 1], u[:, 1] ** 2
        return a

    a = design(c)
    wgt = np.repeat(1.0 / np.maximum(np.where(np.isfinite(se), se, 1e6), _FLOOR) ** 2, 2)
    cov = np.linalg.pinv(a.T @ (a * wgt[:, None]))
    coef = cov @ (a * wgt[:, None]).T @ s.ravel()
    av = design(at)
    field = (av @ coef).reshape(-1, 2)
    var = np.einsum("ij,jk,ik->i", av, cov, av).reshape(-1, 2)
    return field, np.sqrt(var.sum(axis=1))
