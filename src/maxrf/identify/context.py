"""Preparation of one spectrum (step 1 of the notes).

Holds :func:`estimate_fwhm6` (detector resolution from the peak widths),
:func:`_gauss_profile` and :class:`_SpectrumContext`: baseline, noise envelope, observed
peaks, resolution, scattering angle and fitted range of one spectrum.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from maxrf import peaks as _peaks
from maxrf import physics
from maxrf.identify.constants import _SQRT2PI, MIN_FIT_KEV, PEAK_SIGMA
from maxrf.identify.instrument import estimate_theta, estimate_theta_from_lines
from maxrf.types import ArrayLike

_SLOPE = physics.FANO_SLOPE


def estimate_fwhm6(
    counts: ArrayLike, energies: ArrayLike, base: ArrayLike | None = None, *, anode: str = "Rh",
    tube_kv: float = 40.0,
) -> float | None:
    """Detector FWHM at 5.9 keV (keV) from the widths of the strongest peaks, or None:
    :func:`maxrf.physics.estimate_fwhm` (``counts`` first, ``base`` positional)."""
    return physics.estimate_fwhm(energies, counts, base=base, anode=anode, tube_kv=tube_kv)


def _gauss_profile(e: np.ndarray, keV: float, fwhm: float) -> np.ndarray:
    """Unit-area Gaussian density (per keV) at the channel energies."""
    s = fwhm / physics.FWHM_PER_SIGMA
    return np.exp(-0.5 * ((e - keV) / s) ** 2) / (s * _SQRT2PI)


class _SpectrumContext:
    """Everything about one spectrum the selection needs."""

    def __init__(
        self,
        y: np.ndarray,
        e: np.ndarray,
        *,
        anode: str,
        tube_kv: float,
        fwhm6: float | None,
        theta: float | None,
        base: np.ndarray | None,
        env: np.ndarray | None,
        eps: float,
        index: int,
    ) -> None:
        self.y, self.e, self.index = y, e, index
        self.anode, self.tube_kv, self.eps = anode, tube_kv, eps
        self.gain = np.gradient(e)
        fw_ch = _peaks.estimate_fwhm_channels(y)
        if base is None:
            # SNIP follows the low side of the noise: lift it to the mean level, or the
            # continuum left in ``y - base`` is taken for broad peaks
            base = _peaks.baseline(y, fwhm_channels=fw_ch)
            base = _peaks.restore_level(y, np.maximum(base, 0.0), fwhm_channels=fw_ch,
                                 scale=max(_peaks.noise_scale(y, base), 1.0))
        self.base = base
        # noise relative to Poisson: never below Poisson (a smoothed spectrum's channels are
        # correlated, which a smaller variance would ignore)
        self.scale = max(_peaks.noise_scale(y, self.base), 1.0)
        self.env = (
            _peaks.get_noise_envelope(y, self.base, 3.0, scale=self.scale) if env is None else env
        )
        self.ys = ndimage.gaussian_filter1d(y, 1.0)
        self.gross_smooth = ndimage.gaussian_filter1d(y, 2.0)
        if fwhm6 is None:
            fwhm6 = (estimate_fwhm6(y, e, self.base, anode=anode, tube_kv=tube_kv)
                     or physics.DEFAULT_FWHM_KEV)
        self.fwhm6 = float(fwhm6)
        if theta is None:
            theta = estimate_theta(y, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=self.fwhm6)
        if theta is None:  # no K lines excited (W at 40 kV): the L lines' Compton partners
            theta = estimate_theta_from_lines(y, e, anode=anode, tube_kv=tube_kv,
                                              fwhm_at_6keV=self.fwhm6)
        self.theta = 90.0 if theta is None else float(theta)
        lo = max(MIN_FIT_KEV, e[0])
        hi = min(e[-1], tube_kv)
        self.sel = (e >= lo) & (e <= hi)
        self.fw_ch = max(float(physics.fwhm_keV(6.0, self.fwhm6) / np.median(self.gain)), 1.5)
        # observed peaks: significant local maxima above the envelope
        idx, _ = _peaks.find_spectrum_peaks(
            y, base=self.base, fwhm_channels=self.fw_ch, n_sigma=PEAK_SIGMA, scale=self.scale
        )
        idx = idx[(self.ys[idx] > self.env[idx]) & self.sel[idx]]
        self.peak_idx = idx
        self.peak_keV = np.array([self._centre(i) for i in idx], dtype=float)
        self.net = y - self.base
        self.var = self.scale**2 * np.maximum(self.gross_smooth, 1.0)
        # the anode's K Rayleigh and Compton peaks (broad, of imperfect shape): lines there
        # cannot be verified
        k_lines = [ln.energy_keV for ln in physics.anode_lines(anode, tube_kv) if ln.family == "K"]
        if k_lines:
            lo_k = float(physics.compton_shift(min(k_lines), 180.0))
            self.scatter_lo = lo_k - 2.0 * float(physics.fwhm_keV(lo_k, self.fwhm6))
            self.scatter_hi = max(k_lines) + 2.0 * float(physics.fwhm_keV(max(k_lines), self.fwhm6))
        else:
            self.scatter_lo = self.scatter_hi = math.inf

    def _centre(self, i: int) -> float:
        ys = self.ys
        d = 0.0
        if 0 < i < ys.size - 1:
            a, b, c = ys[i - 1], ys[i], ys[i + 1]
            den = a - 2 * b + c
            d = max(-0.5, min(0.5, 0.5 * (a - c) / den)) if den < 0 else 0.0
        return float(np.interp(i + d, np.arange(self.e.size), self.e))
