"""Counting noise of a spectrum and the peaks that stand above it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from maxrf.errors import ParameterError
from maxrf.peaks.baseline import _baseline, baseline
from maxrf.peaks.widths import _as_spectrum, estimate_fwhm_channels
from maxrf.types import ArrayLike

# ------------------------------------------------------------------------------ noise


def noise_scale(y: ArrayLike, base: ArrayLike | None = None) -> float:
    """Ratio of the observed channel-to-channel scatter to Poisson noise.

    About 1 for raw counts, ``1/sqrt(N)`` for a mean of ``N`` count spectra. Measured
    robustly (median absolute deviation) from second differences ``2y[i] - y[i-1] - y[i+1]``
    normalised by their Poisson standard deviation ``sqrt(6 * m[i])``, with ``m`` a smoothed
    copy of ``y`` (the local expectation), over channels with enough counts.

    Parameters
    ----------
    y : array_like
        Spectrum, 1-D.
    base : array_like, optional
        Not needed (kept for symmetry with the other functions).

    Returns
    -------
    float
        Scale factor (dimensionless), > 0.
    """
    y = _as_spectrum(y)
    m = ndimage.gaussian_filter1d(y, 2.0)[1:-1]
    d2 = 2.0 * y[1:-1] - y[:-2] - y[2:]
    positive = m > 0
    if np.count_nonzero(positive) < 8:
        return 1.0
    sel = m >= 5.0
    if np.count_nonzero(sel) < 50:
        sel = positive & (m >= np.median(m[positive]))
    z = d2[sel] / np.sqrt(6.0 * m[sel])
    if z.size < 8:
        return 1.0
    s = 1.4826 * float(np.median(np.abs(z - np.median(z))))
    if not math.isfinite(s) or s <= 0:
        return 1.0
    return s


def get_noise_envelope(
    y: ArrayLike, baseline: ArrayLike | None = None, n_sigma: float = 3.0, *, scale: float = 1.0
) -> np.ndarray:
    """Upper limit of what Poisson noise around a baseline can reach.

    ``envelope = baseline + n_sigma * scale * sqrt(max(baseline, 1))``

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel); used only when ``baseline`` is None.
    baseline : array_like, optional
        Baseline (counts); computed from ``y`` with :func:`baseline` when None.
    n_sigma : float
        Width of the envelope in standard deviations: a channel of pure noise stays
        below it with probability about ``Phi(n_sigma)`` (0.84 for 1, 0.9987 for 3).
    scale : float
        Noise relative to Poisson (see :func:`noise_scale`); 1 for raw counts.

    Returns
    -------
    numpy.ndarray
        Envelope (counts), float64.
    """
    b = _baseline(y) if baseline is None else np.asarray(baseline, dtype=np.float64)
    if n_sigma < 0:
        raise ParameterError(f"n_sigma must be >= 0, got {n_sigma}")
    return b + n_sigma * scale * np.sqrt(np.maximum(b, 1.0))


def find_subpeaks(
    y: ArrayLike,
    envelope: ArrayLike,
    *,
    distance: int | None = None,
    width: float | None = None,
    prominence: float | None = None,
) -> np.ndarray:
    """Channels of the local maxima of ``y`` that rise above the noise envelope.

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel).
    envelope : array_like
        Noise envelope, e.g. from :func:`get_noise_envelope`.
    distance, width, prominence : optional
        Passed to :func:`scipy.signal.find_peaks` (channels, channels, counts).

    Returns
    -------
    numpy.ndarray
        Sorted channel indices (int).
    """
    y = _as_spectrum(y)
    env = np.asarray(envelope, dtype=np.float64)
    if env.shape != y.shape:
        raise ParameterError(f"envelope shape {env.shape} differs from spectrum {y.shape}")
    from scipy import signal  # scipy.signal pulls scipy.stats: ~0.6 s, 25 MB

    idx, _ = signal.find_peaks(y, distance=distance, width=width, prominence=prominence)
    return idx[y[idx] > env[idx]].astype(np.intp)


def _channel_noise(ys: np.ndarray, base: np.ndarray, scale: float, fwhm_channels: float
                   ) -> np.ndarray:
    """Poisson noise of one channel of the local background: the baseline, or the floor of
    the data around a peak when the baseline undershoots (next to strong peaks)."""
    floor = ndimage.minimum_filter1d(ys, size=2 * int(round(1.5 * fwhm_channels)) + 1)
    level = np.maximum(np.maximum(base, floor), 1.0)
    return scale * np.sqrt(level)


def noise_prominence(y: ArrayLike, n_sigma: float = 5.0, *, smooth: float = 1.0,
                     fwhm_channels: float | None = None) -> np.ndarray:
    """Per-channel prominence threshold scaled to the counting noise of a spectrum.

    The default threshold of :func:`find_spectrum_peaks` (and of the hotmax atlas):
    ``n_sigma`` standard deviations of one channel's noise over the local baseline,
    ``n_sigma * scale * sqrt(max(baseline, floor, 1))``, as an array usable as the
    ``prominence`` of ``scipy.signal.find_peaks`` (and of :func:`maxrf.maps.get_slices`).

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel), e.g. the max spectrum.
    n_sigma : float
        Significance (standard deviations).
    smooth : float
        Gaussian smoothing (sigma, channels) of the floor estimate.
    fwhm_channels : float, optional
        Peak width scale (channels); estimated from ``y`` when None.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` minimum prominence per channel (counts).
    """
    y = _as_spectrum(y)
    if not n_sigma > 0:
        raise ParameterError(f"n_sigma must be > 0, got {n_sigma}")
    if fwhm_channels is None:
        fwhm_channels = estimate_fwhm_channels(y)
    base = baseline(y, fwhm_channels=fwhm_channels)
    scale = noise_scale(y, base)
    ys = ndimage.gaussian_filter1d(y, smooth) if smooth and smooth > 0 else y
    return n_sigma * _channel_noise(ys, base, scale, fwhm_channels)


def prominent_peaks(y: ArrayLike, prominence: float) -> np.ndarray:
    """Local maxima of ``y`` whose prominence is at least ``prominence``: the channels
    ``scipy.signal.find_peaks(y, prominence=prominence)`` returns, in numpy alone (for the
    steps that need no more than this, without importing scipy.signal and scipy.stats).

    As scipy: a flat top counts once, at its middle (left of it for an even length); the
    first and last channel are never peaks; the prominence is the height above the higher
    of the lowest points between the peak and the nearest higher channel on either side
    (or the end of the spectrum).

    Parameters
    ----------
    y : array_like
        ``(C,)`` spectrum.
    prominence : float
        Least prominence (units of ``y``).

    Returns
    -------
    numpy.ndarray
        Sorted channel indices (int).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ParameterError(f"need a 1-D spectrum, got shape {y.shape}")
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])  # runs of equal values
    if starts.size < 3:
        return np.zeros(0, dtype=np.intp)
    ends = np.r_[starts[1:], y.size] - 1
    v = y[starts]
    top = np.flatnonzero((v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])) + 1
    top = top[v[top] - y.min() >= prominence]  # cannot rise that far above anything
    out = []
    for j in top:
        i, h = (starts[j] + ends[j]) // 2, v[j]
        higher_left = np.flatnonzero(y[:i] > h)
        higher_right = np.flatnonzero(y[i:] > h)
        lo = higher_left[-1] + 1 if higher_left.size else 0
        hi = i + higher_right[0] if higher_right.size else y.size
        if h - max(y[lo:i + 1].min(), y[i:hi].min()) >= prominence:
            out.append(i)
    return np.asarray(out, dtype=np.intp)


def find_spectrum_peaks(
    y: ArrayLike,
    prominence: float | ArrayLike | None = None,
    *,
    n_sigma: float = 5.0,
    base: ArrayLike | None = None,
    scale: float | None = None,
    smooth: float = 1.0,
    fwhm_channels: float | None = None,
    **kw: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Peaks of a spectrum with a prominence threshold scaled to its counting noise.

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel).
    prominence : float or array_like, optional
        Minimum prominence (counts). Default ``n_sigma * scale * sqrt(max(baseline, 1))``
        per channel: a peak must rise ``n_sigma`` standard deviations of the single-channel
        Poisson noise of its local baseline (a peak many channels wide is then far more
        significant than that in total).
    n_sigma : float
        Significance used for the default prominence.
    base : array_like, optional
        Baseline (counts); computed with :func:`baseline` when None.
    scale : float, optional
        Noise relative to Poisson; measured with :func:`noise_scale` when None.
    smooth : float
        Gaussian smoothing (sigma, channels) applied before the search to suppress
        single-channel noise spikes; 0 for none. Heights in the properties are of the
        smoothed spectrum.
    fwhm_channels : float, optional
        Peak width scale (channels), used for the baseline and a minimum peak distance.
    **kw
        Further :func:`scipy.signal.find_peaks` options (``distance``, ``width``...).

    Returns
    -------
    indices : numpy.ndarray
        Channels of the peaks (int), ascending.
    properties : dict
        The ``scipy.signal.find_peaks`` properties plus ``'significance'`` (prominence in
        standard deviations of one channel's noise), ``'fwhm'`` (width at half prominence,
        channels), ``'baseline'`` (baseline at each peak) and ``'noise'`` (that noise
        standard deviation at each peak, counts).
    """
    y = _as_spectrum(y)
    if fwhm_channels is None:
        fwhm_channels = estimate_fwhm_channels(y)
    if base is None:
        base = baseline(y, fwhm_channels=fwhm_channels)
    base = np.asarray(base, dtype=np.float64)
    if scale is None:
        scale = noise_scale(y, base)
    ys = ndimage.gaussian_filter1d(y, smooth) if smooth and smooth > 0 else y
    noise = _channel_noise(ys, base, scale, fwhm_channels)
    if prominence is None:
        prominence = n_sigma * noise
    kw.setdefault("distance", max(1, int(round(0.3 * fwhm_channels))))
    from scipy import signal

    idx, props = signal.find_peaks(ys, prominence=prominence, **kw)
    props = dict(props)
    props["significance"] = props["prominences"] / noise[idx]
    if idx.size:
        w = signal.peak_widths(
            ys,
            idx,
            rel_height=0.5,
            prominence_data=(props["prominences"], props["left_bases"], props["right_bases"]),
        )[0]
        # remove the smoothing from the width in quadrature
        props["fwhm"] = np.sqrt(np.maximum(w**2 - (2.3548 * smooth) ** 2, 1.0))
    else:
        props["fwhm"] = np.zeros(0)
    props["baseline"] = base[idx]
    props["noise"] = noise[idx]
    return idx.astype(np.intp), props
