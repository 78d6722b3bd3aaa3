"""Baselines of counting spectra (pybaselines, SNIP by default) and their level."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage

from maxrf.errors import ParameterError
from maxrf.peaks.widths import _as_spectrum, estimate_fwhm_channels
from maxrf.types import ArrayLike

#: Baseline methods accepted by :func:`baseline` (names of ``pybaselines.Baseline`` methods).
BASELINE_METHODS = ("snip", "asls", "arpls", "airpls", "aspls", "iarpls", "modpoly", "imodpoly")

# --------------------------------------------------------------------------- baseline


def _lls(y: np.ndarray) -> np.ndarray:
    """log-log-sqrt transform used with SNIP on counting spectra (Morháč)."""
    return np.log(np.log(np.sqrt(np.maximum(y, 0.0) + 1.0) + 1.0) + 1.0)


def _lls_inverse(v: np.ndarray) -> np.ndarray:
    return (np.exp(np.exp(v) - 1.0) - 1.0) ** 2 - 1.0


def baseline(
    y: ArrayLike,
    method: str = "snip",
    *,
    fwhm_channels: float | None = None,
    max_half_window: int | None = None,
    lls: bool = True,
    debias: bool = True,
    **kw: Any,
) -> np.ndarray:
    """Smooth background (continuum) under the peaks of a spectrum.

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel), 1-D.
    method : str
        ``'snip'`` (default, the XRF standard) or any of :data:`BASELINE_METHODS`, computed by
        the corresponding ``pybaselines.Baseline`` method.
    fwhm_channels : float, optional
        Peak FWHM (channels); estimated from ``y`` when not given. Sets the SNIP window.
    max_half_window : int, optional
        SNIP half window (channels); default ``3 * fwhm_channels`` so peaks and close
        doublets are clipped while broad scatter humps stay in the baseline.
    lls : bool
        SNIP only: work on the log-log-sqrt transformed spectrum, which follows both strong
        and weak parts of a spectrum of large dynamic range.
    debias : bool
        SNIP only: SNIP clips to the lower edge of the counting noise (about half a standard
        deviation low); add back the median noise-scaled residual of the peak-free
        channels so the baseline follows the mean continuum.
    **kw
        Passed to the pybaselines method (e.g. ``lam``, ``p``, ``decreasing``).

    Returns
    -------
    numpy.ndarray
        Baseline (same units as ``y``), float64, same length.

    Raises
    ------
    ParameterError
        Unknown method or a bad spectrum.
    """
    from pybaselines import Baseline

    y = _as_spectrum(y)
    if method not in BASELINE_METHODS:
        raise ParameterError(
            f"unknown baseline method {method!r}; choose one of {', '.join(BASELINE_METHODS)}"
        )
    fitter = Baseline(np.arange(y.size, dtype=np.float64), check_finite=False)
    if method == "snip":
        if fwhm_channels is None and (max_half_window is None or "smooth_half_window" not in kw):
            fwhm_channels = estimate_fwhm_channels(y)
        if max_half_window is None:
            max_half_window = int(round(3.0 * fwhm_channels))
        max_half_window = int(min(max(max_half_window, 2), (y.size - 1) // 2))
        kw.setdefault("decreasing", True)
        kw.setdefault("smooth_half_window", max(1, int(round(0.25 * (fwhm_channels or 4.0)))))
        data = _lls(y) if lls else y
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base, _ = fitter.snip(data, max_half_window=max_half_window, **kw)
        base = _lls_inverse(base) if lls else base
        if debias:
            base = _debias(y, np.asarray(base, dtype=np.float64))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base, _ = getattr(fitter, method)(y, **kw)
    return np.asarray(base, dtype=np.float64)


def _debias(y: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Shift a clipped baseline up by the median residual of peak-free channels, in units
    of the local noise (see :func:`baseline`)."""
    sd = np.sqrt(np.maximum(base, 1.0))
    r = (y - base) / sd
    quiet = np.abs(r - np.median(r)) < 3.0
    if np.count_nonzero(quiet) < 16:
        return base
    shift = float(np.median(r[quiet]))
    shift = min(max(shift, 0.0), 2.0)  # only upward, and never by more than 2 sigma
    return base + shift * sd


_baseline = baseline  # for functions whose ``baseline`` argument shadows the function


def restore_level(
    y: np.ndarray,
    base: np.ndarray,
    *,
    fwhm_channels: float,
    scale: float = 1.0,
    n_sigma: float = 3.0,
    iterations: int = 3,
) -> np.ndarray:
    """Lift a clipping baseline to the mean level of the noise around it.

    SNIP-type baselines follow the *lower* side of the channel-to-channel noise: on a
    single-pixel spectrum they sit 30 to 70 % below the true continuum, and an envelope
    ``n_sigma`` above them then lets far too many pure-noise channels through. This
    adds the locally averaged residual ``y - base`` of the channels that are not peaks
    (below the envelope, and more than one FWHM from a channel above it), averaged with
    a Gaussian of ``4 * fwhm_channels`` (normalised convolution), a few times over.

    Parameters
    ----------
    y, base : numpy.ndarray
        Spectrum and its clipping baseline (counts per channel).
    fwhm_channels : float
        Peak FWHM (channels): the mask margin and (x 4) the averaging scale.
    scale : float
        Noise relative to Poisson (1 for raw counts).
    n_sigma : float
        Channels above ``base + n_sigma * scale * sqrt(base)`` count as peaks.
    iterations : int
        Number of corrections.

    Returns
    -------
    numpy.ndarray
        The corrected baseline (counts, >= 0).
    """
    fw = max(float(fwhm_channels), 1.0)
    margin = max(1, int(round(fw)))
    base = np.asarray(base, dtype=np.float64)
    for _ in range(iterations):
        env = base + n_sigma * scale * np.sqrt(np.maximum(base, 1.0))
        quiet = ~ndimage.binary_dilation(y > env, iterations=margin)
        num = ndimage.gaussian_filter1d(np.where(quiet, y - base, 0.0), 4.0 * fw, mode="nearest")
        den = ndimage.gaussian_filter1d(quiet.astype(np.float64), 4.0 * fw, mode="nearest")
        corr = np.where(den > 0.05, num / np.maximum(den, 0.05), 0.0)
        base = np.maximum(base + corr, 0.0)
    return base
