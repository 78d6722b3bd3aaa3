"""Baselines, Poisson noise envelopes and peak finding on 1-D spectra (pure functions).

All functions take spectra as 1-D arrays indexed by channel and work in channel units;
energies never enter here (see :mod:`maxrf.calibration` for channel -> keV).

Notes
-----
Counting statistics: a channel with expected count ``b`` fluctuates with standard
deviation ``sqrt(b)`` (Poisson). Spectra that are not raw counts (a mean spectrum over
pixels, a max spectrum) scale differently; :func:`noise_scale` measures the factor
between the observed scatter and ``sqrt(baseline)`` so peak thresholds stay meaningful.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage, optimize, signal

from maxrf.errors import ParameterError
from maxrf.types import ArrayLike

__all__ = [
    "BASELINE_METHODS",
    "PeakFit",
    "baseline",
    "estimate_fwhm_channels",
    "fit_peaks",
    "find_spectrum_peaks",
    "find_subpeaks",
    "get_noise_envelope",
    "noise_scale",
]

#: Baseline methods accepted by :func:`baseline` (names of ``pybaselines.Baseline`` methods).
BASELINE_METHODS = ("snip", "asls", "arpls", "airpls", "aspls", "iarpls", "modpoly", "imodpoly")


def _as_spectrum(y: ArrayLike, name: str = "y") -> np.ndarray:
    """Return ``y`` as a finite 1-D float64 array or raise ParameterError."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be a 1-D spectrum, got shape {arr.shape}")
    if arr.size < 3:
        raise ParameterError(f"{name} must have at least 3 channels, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} holds non-finite values (nan or inf)")
    return arr


# ----------------------------------------------------------------------------- widths


def estimate_fwhm_channels(y: ArrayLike, *, n_peaks: int = 6, default: float = 8.0) -> float:
    """Typical peak full width at half maximum of a spectrum (channels).

    The median width at half prominence of the sharp peaks (within a factor 2 of the
    narrowest) among the ``n_peaks`` most significant peaks of a lightly smoothed copy of
    ``y``: the width of fluorescence peaks, not of broad Compton or scatter humps. A rough
    scale to size baseline and fit windows before any energy calibration is known.

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel).
    n_peaks : int
        How many of the most significant peaks to measure.
    default : float
        Returned when no peak can be measured (channels).

    Returns
    -------
    float
        FWHM in channels, at least 1.5.
    """
    y = _as_spectrum(y)
    ys = ndimage.gaussian_filter1d(y, 1.0)
    noise = np.sqrt(np.maximum(ys, 1.0))
    idx, props = signal.find_peaks(ys, prominence=8.0 * noise)
    if idx.size == 0:
        return float(default)
    significance = props["prominences"] / noise[idx]
    order = np.argsort(significance)[::-1][:n_peaks]
    widths = signal.peak_widths(ys, idx[order], rel_height=0.5)[0]
    widths = widths[np.isfinite(widths) & (widths >= 2.0)]
    if widths.size == 0:
        return float(default)
    # the sharp peaks: within a factor 2 of the narrowest (not Compton or scatter humps)
    sharp = widths[widths <= 2.0 * widths.min()]
    w = float(np.median(sharp))
    # smoothing with sigma=1 channel widens a Gaussian: remove it in quadrature
    w = math.sqrt(max(w * w - 2.3548**2, 1.5**2))
    return max(w, 1.5)


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


# ------------------------------------------------------------------------- peak fits


@dataclass(frozen=True)
class PeakFit:
    """Gaussian fitted to one peak (all positions and widths in channels).

    Attributes
    ----------
    index : int
        Channel of the local maximum the fit started from.
    center : float
        Fitted centre (channels, sub-channel precision).
    center_err : float
        Statistical standard error of ``center`` (channels).
    sigma : float
        Gaussian standard deviation (channels); FWHM = 2.3548 * sigma.
    amplitude : float
        Peak height above the local background (counts).
    area : float
        Net peak area (counts).
    significance : float
        Height over the noise standard deviation at the peak.
    ok : bool
        False when the least-squares fit failed and ``center`` is a parabola estimate.
    """

    index: int
    center: float
    center_err: float
    sigma: float
    amplitude: float
    area: float
    significance: float
    ok: bool

    @property
    def fwhm(self) -> float:
        """Full width at half maximum (channels)."""
        return 2.3548 * self.sigma


def _gauss_lin(x: np.ndarray, a: float, mu: float, s: float, b0: float, b1: float) -> np.ndarray:
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + b0 + b1 * x


def _gauss_lin_jac(x: np.ndarray, a: float, mu: float, s: float, b0: float, b1: float) -> np.ndarray:
    u = (x - mu) / s
    g = np.exp(-0.5 * u * u)
    return np.column_stack([g, a * g * u / s, a * g * u * u / s, np.ones_like(x), x])


def _parabola_center(y: np.ndarray, i: int) -> float:
    if i <= 0 or i >= y.size - 1:
        return float(i)
    a, b, c = np.log(np.maximum(y[i - 1 : i + 2], 1e-9))
    den = a - 2.0 * b + c
    if den >= 0:
        return float(i)
    return float(i + 0.5 * (a - c) / den)


def _gauss_const(x: np.ndarray, a: float, mu: float, s: float, b0: float) -> np.ndarray:
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + b0


def _gauss_const_jac(x: np.ndarray, a: float, mu: float, s: float, b0: float) -> np.ndarray:
    u = (x - mu) / s
    g = np.exp(-0.5 * u * u)
    return np.column_stack([g, a * g * u / s, a * g * u * u / s, np.ones_like(x)])


def fit_peaks(
    y: ArrayLike,
    indices: ArrayLike,
    *,
    fwhm_channels: float | ArrayLike | None = None,
    base: ArrayLike | None = None,
    scale: float = 1.0,
    half_window: float = 1.0,
    subtract_baseline: bool = False,
) -> list[PeakFit]:
    """Fit a Gaussian to each peak for sub-channel centres and widths.

    Parameters
    ----------
    y : array_like
        Spectrum (counts per channel).
    indices : array_like of int
        Channels of the peak maxima (e.g. from :func:`find_spectrum_peaks`).
    fwhm_channels : float or array_like, optional
        Expected FWHM (channels), one value or one per peak; estimated when None. Sets the
        fit window and the starting width.
    base : array_like, optional
        Baseline (counts), used for starting values and the noise of the weights.
    scale : float
        Noise relative to Poisson (see :func:`noise_scale`).
    half_window : float
        Fit window half width in units of ``fwhm_channels`` (at least 3 channels).
    subtract_baseline : bool
        Fit ``y - base`` with a Gaussian on a constant, around the maximum of the smoothed
        baseline-subtracted data (robust for peaks on a steep background such as the
        Rayleigh peak on the Compton tail). Default: ``y`` with a Gaussian on a straight
        line.

    Returns
    -------
    list of PeakFit
        One per index, same order. A fit whose centre leaves the central half FWHM or
        whose width is implausible falls back to a parabola through the top of the
        smoothed peak (``ok=False``).
    """
    y = _as_spectrum(y)
    indices = np.atleast_1d(np.asarray(indices, dtype=np.intp))
    if fwhm_channels is None:
        fwhm_channels = estimate_fwhm_channels(y)
    fw_all = np.broadcast_to(np.asarray(fwhm_channels, dtype=np.float64), indices.shape)
    if base is None:
        base = baseline(y, fwhm_channels=float(np.median(fw_all)) if fw_all.size else None)
    b = np.asarray(base, dtype=np.float64)
    ys = ndimage.gaussian_filter1d(y, 1.0)
    net = y - b
    out: list[PeakFit] = []
    n = y.size
    for i, fw in zip(indices, fw_all):
        i = int(i)
        fw = float(fw)
        s0 = fw / 2.3548
        if subtract_baseline:
            # re-centre on the maximum of the smoothed net counts near the given channel
            r = max(1, int(round(0.5 * fw)))
            lo_r, hi_r = max(0, i - r), min(n, i + r + 1)
            sm = ndimage.gaussian_filter1d(net[max(0, lo_r - 3 * r) : hi_r + 3 * r], max(1.0, 0.25 * fw))
            off = lo_r - max(0, lo_r - 3 * r)
            i = lo_r + int(np.argmax(sm[off : off + (hi_r - lo_r)]))
        hw = max(3, int(math.ceil(half_window * fw)))
        lo, hi = max(0, i - hw), min(n, i + hw + 1)
        x = np.arange(lo, hi, dtype=np.float64) - i
        noise_peak = scale * math.sqrt(max(b[i], 1.0))
        amp0 = max(float(ys[i] - b[i]), float(scale))
        sig_w = scale * np.sqrt(np.maximum(y[lo:hi], max(1.0, 0.25 * float(b[i]))))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if subtract_baseline:
                    popt, pcov = optimize.curve_fit(
                        _gauss_const,
                        x,
                        net[lo:hi],
                        p0=[amp0, 0.0, s0, 0.0],
                        sigma=sig_w,
                        absolute_sigma=True,
                        jac=_gauss_const_jac,
                        method="lm",
                        maxfev=400,
                    )
                else:
                    popt, pcov = optimize.curve_fit(
                        _gauss_lin,
                        x,
                        y[lo:hi],
                        p0=[amp0, 0.0, s0, float(b[i]), 0.0],
                        sigma=sig_w,
                        absolute_sigma=True,
                        jac=_gauss_lin_jac,
                        method="lm",
                        maxfev=400,
                    )
            err = float(np.sqrt(pcov[1, 1])) if np.isfinite(pcov[1, 1]) else float("nan")
            a, mu, s = float(popt[0]), float(popt[1]) + i, abs(float(popt[2]))
            limit = 0.5 * fw if subtract_baseline else 0.75 * hw
            wide = (0.5, 2.0) if subtract_baseline else (0.2, 4.0)
            ok = bool(np.isfinite(err) and a > 0 and abs(mu - i) < limit and wide[0] * s0 < s < wide[1] * s0)
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            ok = False
        if not ok:
            top = ndimage.gaussian_filter1d(net, max(1.0, 0.25 * fw)) if subtract_baseline else ys
            mu = _parabola_center(top, i)
            a, s = amp0, s0
            err = s0 / math.sqrt(max(amp0 / max(scale, 1e-12) ** 2, 1.0))
        out.append(
            PeakFit(
                index=i,
                center=mu,
                center_err=err,
                sigma=s,
                amplitude=a,
                area=a * s * math.sqrt(2.0 * math.pi),
                significance=a / noise_peak,
                ok=ok,
            )
        )
    return out
