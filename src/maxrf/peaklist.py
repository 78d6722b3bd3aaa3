"""The one list of max-spectrum peaks that hotmax, the peak maps and the report share.

Peaks of the max spectrum above the counting-noise threshold
(:func:`maxrf.peaks.find_spectrum_peaks`), each moved to its highest raw channel, and
peaks closer than the detector resolution (one FWHM) merged into the higher one: two
maxima of one noisy line (8.01 / 8.04 / 8.06 keV) are one peak, whose map a conservator
reads once. :class:`maxrf.hotmax.HotmaxAtlas` and :func:`maxrf.maps.compute_maps` (its
default prominence) both call :func:`max_spectrum_peaks`, so the atlas's peaks and the
peak maps are the same list.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def refine_channels(y: np.ndarray, idx: np.ndarray, half: int) -> np.ndarray:
    """Move each peak to the highest raw channel within ``half`` channels; drop duplicates."""
    out = []
    for i in idx:
        lo, hi = max(0, int(i) - half), min(y.size, int(i) + half + 1)
        out.append(lo + int(np.argmax(y[lo:hi])))
    return np.unique(np.asarray(out, dtype=np.intp))


def merge_close(y: np.ndarray, idx: np.ndarray, min_distance: float) -> np.ndarray:
    """Peaks (channels) closer than ``min_distance`` channels merged, the highest kept.

    Peaks are taken from the highest down; a peak within ``min_distance`` of one kept
    already is dropped.
    """
    idx = np.asarray(idx, dtype=np.intp)
    kept: list[int] = []
    for i in idx[np.argsort(-np.asarray(y)[idx], kind="stable")]:
        if all(abs(int(i) - k) >= min_distance for k in kept):
            kept.append(int(i))
    return np.array(sorted(kept), dtype=np.intp)


def max_spectrum_peaks(y: Any, prominence: Any = None, *, n_sigma: float = 5.0,
                       fwhm_channels: float | None = None) -> tuple[np.ndarray, float]:
    """Peak channels of a max spectrum (counts), and the FWHM (channels) used.

    Parameters
    ----------
    y : array_like
        ``(C,)`` max spectrum, counts.
    prominence : float or array_like, optional
        Minimum prominence (counts); default ``n_sigma`` standard deviations of the local
        counting noise.
    n_sigma : float
        See ``prominence``.
    fwhm_channels : float, optional
        Detector resolution (channels); estimated from the spectrum by default.
    """
    from maxrf import peaks as _peaks

    y = np.asarray(y, dtype=np.float64)
    fwhm = float(fwhm_channels) if fwhm_channels else _peaks.estimate_fwhm_channels(y)
    idx, _ = _peaks.find_spectrum_peaks(y, prominence, n_sigma=n_sigma, fwhm_channels=fwhm)
    channels = refine_channels(y, idx, max(1, int(round(0.5 * fwhm))))
    return merge_close(y, channels, fwhm), fwhm
