"""The quality verdict of a registration and its evidence (every check reported)."""

from __future__ import annotations

from typing import Any

import numpy as np

from maxrf.io.photo import Photo
from maxrf.registration import homography as hg
from maxrf.registration.local_check import local_alignment
from maxrf.registration.result import Registration
from maxrf.registration.stability import Stability, stability

__all__ = ["FAILED", "GOOD", "judge"]

#: thresholds for "good" and below which (above, for distances) a registration "failed".
#: explained: partial R^2 of the colour fit (:class:`maxrf.registration.auto.FitMetric`), the
#: share of the scan image's variance left by a smooth trend that the photo's colours explain;
#: contrast: 1 - (best R^2 at poses shifted by a third of the scan) / R^2, how distinct the
#: optimum is; local_max_error_scan_px: the largest error over the scan area estimated from
#: windows registered on their own (:mod:`maxrf.registration.local_check`); points: RMS of
#: the control point residuals; distortion: ratio of
#: the local scales over the scan times the anisotropy (1 for a similarity); stability: the
#: largest displacement over the scan area of the projective stage refitted without each
#: quadrant, among the refits that fit the rest significantly better
#: (:mod:`maxrf.registration.stability`; 0 on clean synthetic photos, 1-3 px where a grey
#: card hides a corner of the scan and the fit bends towards it).
GOOD: dict[str, float] = {"overlap": 0.97, "explained": 0.5, "contrast": 0.3,
                          "local_max_error_scan_px": 0.8, "points_rms_scan_px": 0.5, "distortion": 1.35,
                          "stability_scan_px": 0.8}
FAILED: dict[str, float] = {"overlap": 0.5, "explained": 0.25, "contrast": 0.15,
                            "local_max_error_scan_px": 4.0, "points_rms_scan_px": 3.0, "distortion": 2.0,
                            "stability_scan_px": 4.0}


def _check(value: float, good: float, failed: float, higher_is_better: bool) -> dict[str, Any]:
    v = float(value)
    if not np.isfinite(v):
        outcome = "failed"
    elif higher_is_better:
        outcome = "good" if v >= good else "failed" if v < failed else "doubtful"
    else:
        outcome = "good" if v <= good else "failed" if v > failed else "doubtful"
    return {"value": v if np.isfinite(v) else None, "good": good, "failed": failed, "outcome": outcome}


def _distortion(matrix: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest ratio of local scales over the scan, times the anisotropy of the affine part."""
    h, w = shape
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=float)
    sc = hg.local_scale(matrix, corners)
    sv = np.linalg.svd(matrix[:2, :2] / matrix[2, 2], compute_uv=False)
    return float(sc.max() / max(sc.min(), 1e-12) * sv[0] / max(sv[1], 1e-12))


def _stability_check(scan: np.ndarray, chans: np.ndarray, ph: Photo, m: np.ndarray,
                     st: Stability | None) -> dict[str, Any]:
    """The stability check with, as evidence, each left-out quadrant's displacement and gain."""
    if st is None:
        st = stability(scan if scan.ndim == 3 else scan[None], chans, ph, m)
    key = "stability_scan_px"
    out = _check(st.max_shift, GOOD[key], FAILED[key], False)
    out["left_out"] = {name: {"shift_scan_px": float(v), "gain": float(g)}
                       for name, v, g in zip(st.parts, st.shifts, st.gains)}
    return out


def judge(reg: Registration, scan: np.ndarray, chans: np.ndarray, ph: Photo,
          residuals: list[float], stable: Stability | None = None) -> None:
    """Fill ``quality``, ``checks``, ``metric``, ``overlap``, ``scale``, ``rms_px`` of ``reg``.

    ``stable``: the stability of ``reg.matrix`` if already measured (else measured here).
    """
    from maxrf.registration.register import fit_metric

    m = reg.matrix
    h, w = scan.shape[-2:]
    centre = np.array([[(w - 1) / 2, (h - 1) / 2]])
    scale = float(hg.local_scale(m, centre)[0])
    reg.scale = scale
    grid = hg.scan_grid((h, w))
    xy = hg.apply(m, grid)
    inside = ((xy[:, 0] >= -0.5) & (xy[:, 0] <= ph.size[0] - 0.5)
              & (xy[:, 1] >= -0.5) & (xy[:, 1] <= ph.size[1] - 0.5))
    reg.overlap = float(inside.mean())
    checks: dict[str, Any] = {"overlap": _check(reg.overlap, GOOD["overlap"], FAILED["overlap"], True)}
    checks["distortion"] = _check(_distortion(m, (h, w)), GOOD["distortion"], FAILED["distortion"], False)
    if reg.overlap >= FAILED["overlap"] and np.isfinite(scale) and scale > 0:
        # the global evidence from the first (sum) image alone: regressed on nine colour
        # terms, its share explained stays low for another artwork, where tens of separate
        # images explain half of any smooth photo's variance by chance
        metric = fit_metric(scan[:1] if scan.ndim == 3 else scan, chans, ph, m, partial=True)
        r2 = metric(m)
        reg.metric = r2
        shifts = [(dx * w / 3, dy * h / 3) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
        null = max(metric(m, s) for s in shifts)
        checks["explained"] = _check(r2, GOOD["explained"], FAILED["explained"], True)
        contrast = 1 - null / r2 if r2 > 0 else 0.0
        checks["contrast"] = _check(contrast, GOOD["contrast"], FAILED["contrast"], True)
        local = local_alignment(scan, chans, ph, m)
        quad = np.linalg.norm(local.shifts, axis=1) * scale
        key = "local_max_error_scan_px"
        checks[key] = _check(local.max_error, GOOD[key], FAILED[key], False)
        checks[key]["corner_error_scan_px"] = [float(v) for v in local.corner_error]
        # the image fit's own robustness (the user's points are judged by their residuals);
        # not worth its refits once the image evidence has failed
        if reg.method != "points" and all(checks[k]["outcome"] != "failed"
                                          for k in ("explained", "contrast")):
            checks["stability_scan_px"] = _stability_check(scan, chans, ph, m, stable)
    else:
        quad = np.array([np.nan])
        for key in ("explained", "contrast"):
            checks[key] = _check(float("nan"), GOOD[key], FAILED[key], True)
    if reg.method.startswith("points"):
        res = np.asarray(residuals, dtype=float)
        used = res if reg.inliers is None else res[np.asarray(reg.inliers)]
        reg.residuals = [float(r) for r in res]
        reg.rms_px = float(np.sqrt(np.mean(used ** 2)))
        checks["points_rms_scan_px"] = _check(reg.rms_px / scale, GOOD["points_rms_scan_px"],
                                              FAILED["points_rms_scan_px"], False)
        # the image evidence can only cast doubt on user's points, not fail them
        decisive = ("overlap", "distortion", "points_rms_scan_px")
    else:
        reg.residuals = [float(q) for q in quad]
        reg.rms_px = float(np.sqrt(np.mean(quad ** 2)))
        decisive = ("overlap", "distortion", "explained", "contrast", "local_max_error_scan_px",
                    "stability_scan_px")
    outcomes = {k: v["outcome"] for k, v in checks.items() if isinstance(v, dict)}
    if any(outcomes.get(k) == "failed" for k in decisive):
        quality = "failed"
    elif all(o == "good" for o in outcomes.values()):
        quality = "good"
    else:
        quality = "doubtful"
    checks["decisive"] = list(decisive)
    reg.checks = checks
    reg.quality = quality
