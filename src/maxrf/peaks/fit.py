"""Gaussian fits of single peaks: sub-channel centres and widths (:class:`PeakFit`)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from maxrf.peaks.baseline import baseline
from maxrf.peaks.widths import _as_spectrum, estimate_fwhm_channels
from maxrf.types import ArrayLike

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
    return [_fit_one(y, ys, net, b, int(i), float(fw), scale, half_window, subtract_baseline)
            for i, fw in zip(indices, fw_all)]


def _recentre(net: np.ndarray, i: int, fw: float) -> int:
    """The maximum of the smoothed net counts within half a FWHM of channel ``i``."""
    n = net.size
    r = max(1, int(round(0.5 * fw)))
    lo_r, hi_r = max(0, i - r), min(n, i + r + 1)
    sm = ndimage.gaussian_filter1d(net[max(0, lo_r - 3 * r) : hi_r + 3 * r], max(1.0, 0.25 * fw))
    off = lo_r - max(0, lo_r - 3 * r)
    return lo_r + int(np.argmax(sm[off : off + (hi_r - lo_r)]))


def _least_squares(x: np.ndarray, data: np.ndarray, amp0: float, s0: float, b_i: float,
                   sig_w: np.ndarray, subtract_baseline: bool) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian on a constant (net counts) or on a straight line (counts): ``popt, pcov``."""
    from scipy import optimize  # here only: ~20 MB and 0.45 s for every importer of maxrf.peaks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if subtract_baseline:
            return optimize.curve_fit(
                _gauss_const, x, data, p0=[amp0, 0.0, s0, 0.0], sigma=sig_w,
                absolute_sigma=True, jac=_gauss_const_jac, method="lm", maxfev=400,
            )
        return optimize.curve_fit(
            _gauss_lin, x, data, p0=[amp0, 0.0, s0, b_i, 0.0], sigma=sig_w,
            absolute_sigma=True, jac=_gauss_lin_jac, method="lm", maxfev=400,
        )


def _fit_one(y: np.ndarray, ys: np.ndarray, net: np.ndarray, b: np.ndarray, i: int, fw: float,
             scale: float, half_window: float, subtract_baseline: bool) -> PeakFit:
    """Fit the peak at channel ``i`` (see :func:`fit_peaks`)."""
    n = y.size
    s0 = fw / 2.3548
    if subtract_baseline:
        i = _recentre(net, i, fw)
    hw = max(3, int(math.ceil(half_window * fw)))
    lo, hi = max(0, i - hw), min(n, i + hw + 1)
    x = np.arange(lo, hi, dtype=np.float64) - i
    noise_peak = scale * math.sqrt(max(b[i], 1.0))
    amp0 = max(float(ys[i] - b[i]), float(scale))
    sig_w = scale * np.sqrt(np.maximum(y[lo:hi], max(1.0, 0.25 * float(b[i]))))
    try:
        data = net[lo:hi] if subtract_baseline else y[lo:hi]
        if x.size <= (4 if subtract_baseline else 5):
            # a peak at the spectrum's first or last channels: fewer channels than parameters
            raise ValueError("too few channels to fit")
        popt, pcov = _least_squares(x, data, amp0, s0, float(b[i]), sig_w, subtract_baseline)
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
    return PeakFit(
        index=i,
        center=mu,
        center_err=err,
        sigma=s,
        amplitude=a,
        area=a * s * math.sqrt(2.0 * math.pi),
        significance=a / noise_peak,
        ok=ok,
    )
