"""Observed peaks of a spectrum (step 1 of :func:`auto_calibrate`).

A spectrum prepared for peak work (:class:`_Spec`: baseline, noise, evidence) and its
significant peaks with Gaussian-fitted centres and widths (:class:`_Obs`), including a
strong peak cut by the start of the axis; peaks of the max spectrum are merged in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from maxrf import peaks as _peaks
from maxrf import physics

_SMOOTH_NOISE = 0.53  # noise left after a Gaussian smoothing of 1 channel: 1/sqrt(2 sqrt(pi))


@dataclass
class _Spec:
    """One spectrum prepared for peak work."""

    y: np.ndarray
    base: np.ndarray
    scale: float
    fwhm: float  # typical FWHM (channels)
    source: str
    evidence: np.ndarray  # (smoothed y - baseline) / noise, per channel
    noise: np.ndarray  # noise standard deviation of the smoothed spectrum (counts)
    #: blend fits of this spectrum by their arguments (:func:`maxrf.calibration.scatter_fit.fit_rayleigh`):
    #: the hypotheses, their polish and their checks ask for a third of them more than once
    fits: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def line_evidence(self, channel: float, tol: float) -> float:
        """Largest significance of the data above the baseline within ``channel +- tol``
        (channels); NaN when that range is not on the axis or is empty (a hypothesis with a
        negative gain puts lines at negative tolerances)."""
        n = self.evidence.size
        if not (math.isfinite(channel) and math.isfinite(tol) and tol >= 0):
            return float("nan")
        lo, hi = int(math.floor(channel - tol)), int(math.ceil(channel + tol)) + 1
        if lo < 1 or hi > n - 1:
            return float("nan")
        return float(np.max(self.evidence[lo:hi]))


@dataclass
class _Obs:
    """An observed peak (positions and widths in channels)."""

    channel: float
    err: float
    fwhm: float
    significance: float
    weight: float
    spec: _Spec
    ok: bool
    index: int
    broad: bool
    height: float = 0.0  # counts above the baseline
    edge: bool = False  # a peak cut by the start of the axis (fitted on its visible flank)
    #: the larger of ``fwhm`` and the width at half prominence (channels): a fit of a peak's
    #: top on a window narrower than the peak finds it too narrow (Rh K-alpha fitted 154 eV
    #: wide, measured 268 eV; dev seed 400014), so a peak is too narrow for a line only when
    #: this is; None: ``fwhm``
    fwhm_wide: float | None = None

    @property
    def widest(self) -> float:
        """The larger width estimate (channels): :attr:`fwhm_wide`, else :attr:`fwhm`."""
        return self.fwhm if self.fwhm_wide is None else self.fwhm_wide


def _weight(significance: float) -> float:
    """Score weight of a peak: grows with its significance, so strong peaks dominate."""
    return float(math.sqrt(max(significance, 0.0)))


def _prepare(y: np.ndarray, source: str) -> _Spec:
    from scipy.ndimage import gaussian_filter1d

    fwhm = _peaks.estimate_fwhm_channels(y)
    base = _peaks.baseline(y, fwhm_channels=fwhm)
    scale = _peaks.noise_scale(y)
    ys = gaussian_filter1d(y, 1.0)
    noise = scale * _SMOOTH_NOISE * np.sqrt(np.maximum(base, 1.0))
    evidence = (ys - base) / noise
    return _Spec(y=y, base=base, scale=scale, fwhm=fwhm, source=source, evidence=evidence, noise=noise)


def _observe(spec: _Spec, max_peaks: int = 30, n_sigma: float = 8.0) -> list[_Obs]:
    """The ``max_peaks`` most significant peaks with Gaussian-fitted centres."""
    # significance here is against the noise of the lightly smoothed spectrum (about half
    # the single-channel noise): the scale all thresholds of this module are set in
    idx, props = _peaks.find_spectrum_peaks(
        spec.y,
        base=spec.base,
        scale=spec.scale,
        fwhm_channels=spec.fwhm,
        n_sigma=n_sigma * _SMOOTH_NOISE,
    )
    if idx.size == 0:
        return []
    significance = props["significance"] / _SMOOTH_NOISE
    order = np.argsort(significance)[::-1][:max_peaks]
    idx, sig = idx[order], significance[order]
    measured = props["fwhm"][order]
    # fit windows: the measured width, but never much wider than a typical line (the
    # measured width of a blend such as Rh L-alpha + L-beta would pull the centre)
    widths = np.clip(measured, 0.4 * spec.fwhm, 1.3 * spec.fwhm)
    fits = _peaks.fit_peaks(
        spec.y,
        idx,
        fwhm_channels=widths,
        base=spec.base,
        scale=spec.scale,
        half_window=0.8,
        subtract_baseline=True,
    )
    # a peak narrower than its window whose fit failed (the width bound is relative to the
    # window) is refitted in a window of its own width: the zero peak, 4 channels wide where
    # the spectrum's typical peak is 32, kept its parabola centre with a 4-channel error and
    # fell out of every match (dev seed 500486)
    narrow = [j for j, (f, w, wm) in enumerate(zip(fits, widths, measured)) if not f.ok and wm < w]
    if narrow:
        refits = _peaks.fit_peaks(
            spec.y, idx[narrow], fwhm_channels=np.maximum(measured[narrow], 2.0), base=spec.base,
            scale=spec.scale, half_window=0.8, subtract_baseline=True,
        )
        for j, f in zip(narrow, refits):
            if f.ok:
                fits[j], widths[j] = f, max(float(measured[j]), 2.0)
    out = []
    for f, s, w, wm in zip(fits, sig, widths, measured):
        if not (0 <= f.center <= spec.y.size - 1):
            continue
        err = f.center_err if (f.ok and math.isfinite(f.center_err)) else 0.3 * w
        fwhm = _width(f, float(wm), float(w))
        out.append(
            _Obs(
                channel=float(f.center),
                err=float(max(err, 0.01)),
                fwhm=float(fwhm),
                significance=float(s),
                weight=_weight(float(s)),
                spec=spec,
                ok=f.ok,
                index=int(f.index),
                broad=bool(fwhm > 4.0 * spec.fwhm),
                height=float(f.amplitude),
                fwhm_wide=float(max(fwhm, wm)),
            )
        )
    edge = _edge_peak(spec)
    if edge is not None:  # it replaces what the peak search made of the same peak
        out = [o for o in out if abs(o.channel - edge.channel) > 0.5 * edge.fwhm] + [edge]
    return out


def _width(fit: _peaks.PeakFit, measured: float, window: float) -> float:
    """FWHM (channels) of a peak: the fitted one, unless the fit failed or its window
    (``window`` channels, the measured width clipped near the spectrum's typical one) held
    less than half the peak's width, then the width measured at half prominence.

    Such a window holds only the top of the peak, whose width a Gaussian on a free
    constant leaves unconstrained: the typical width may be the zero peak's, and a line at
    17 keV is four to five times as wide (it was fitted 31 eV wide for 210 eV). A blend
    only somewhat wider than the window (Rh L-alpha with L-beta) keeps the fit of its top.
    """
    if fit.ok and measured <= 2.0 * window:
        return float(fit.fwhm)
    return float(measured)


def _edge_peak(spec: _Spec) -> _Obs | None:
    """A strong peak at or cut by the start of the axis (the zero peak of an axis that
    starts near 0 keV), where the baseline and the peak search are unreliable: a Gaussian
    fitted to the logarithm of its visible part."""
    y = spec.y
    n = y.size
    if n < 20:
        return None
    i0 = int(np.argmax(y[:4]))
    if not (y[i0] >= y[i0 + 1] >= y[i0 + 2]):
        return None
    # the baseline cannot be trusted at the edge: a constant background from the data
    # just after the falling flank
    j = i0 + 1
    while j < min(n - 1, 60) and y[j + 1] <= y[j]:
        j += 1
    w = max(3, int(round(spec.fwhm)))
    bg = float(np.min(y[j : j + w])) if j + w <= n else float(y[j])
    noise = spec.scale * math.sqrt(max(bg, 1.0))
    height = float(y[i0] - bg)
    if height < 50.0 * noise:
        return None
    keep = (y[: j + 1] - bg) > 0.02 * height
    x = np.arange(j + 1, dtype=np.float64)[keep]
    v = (y[: j + 1] - bg)[keep]
    if x.size < 4:
        return None
    try:
        # the log of Poisson counts has variance 1/counts: weights sqrt(counts)
        (c2, c1, _), cov = np.polyfit(x, np.log(v), 2, w=np.sqrt(v), cov="unscaled")
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not c2 < 0:
        return None
    sigma = math.sqrt(-1.0 / (2.0 * c2))
    mu = -c1 / (2.0 * c2)
    if not (0.5 <= sigma <= spec.fwhm and -3.0 * sigma <= mu <= i0 + sigma):
        return None
    amp = height * math.exp(0.5 * ((i0 - mu) / sigma) ** 2)
    # the centre's error propagated from the fit: a centre off the data is extrapolated
    # from the flank, many times less certain than sigma / sqrt(counts) (dev seed 400205:
    # 9 channels off the axis, 0.25 channel by that rule, 4 channels off, 13 by this one)
    grad = np.array([c1 / (2.0 * c2 * c2), -1.0 / (2.0 * c2), 0.0])
    err_fit = math.sqrt(max(float(grad @ cov @ grad), 0.0)) * spec.scale
    err = max(err_fit, sigma / math.sqrt(max(float(np.sum(v)) / max(spec.scale, 1e-9) ** 2, 1.0)))
    sig = amp / noise
    return _Obs(
        channel=float(mu),
        err=float(max(err, 0.02)),
        fwhm=float(physics.FWHM_PER_SIGMA * sigma),
        significance=float(sig),
        weight=_weight(float(sig)),
        spec=spec,
        ok=True,
        index=0,
        broad=False,
        height=float(amp),
        edge=True,
    )


def _merge(primary: list[_Obs], extra: list[_Obs]) -> list[_Obs]:
    """Add peaks of ``extra`` (max spectrum) not already in ``primary`` (sum spectrum)."""
    out = list(primary)
    for o in extra:
        if all(abs(o.channel - p.channel) > 0.5 * p.spec.fwhm for p in primary):
            out.append(o)
    out.sort(key=lambda o: o.channel)
    return out
