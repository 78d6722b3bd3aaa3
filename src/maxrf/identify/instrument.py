"""Instrument peaks: anode lines scattered (Rayleigh, Compton), escape, sum, air, zero.

Holds :data:`INSTRUMENT_KINDS`, :class:`InstrumentPeak`, :class:`InstrumentPattern`,
:func:`estimate_theta` (scattering angle from the Compton peak) and
:func:`instrument_pattern`, with the anode line groups and the Compton broadening they
share with the fit templates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.identify.patterns import PatternPeak, _pattern_peaks
from maxrf.types import ArrayLike

#: kinds of instrument peaks
INSTRUMENT_KINDS: tuple[str, ...] = ("rayleigh", "compton", "escape", "sum", "air", "zero")


@dataclass(frozen=True)
class InstrumentPeak:
    """A peak of the instrument, not of the sample.

    Attributes
    ----------
    name : str
        ``'Rh Ka1 Rayleigh'``, ``'Rh Ka1 Compton'``, ``'Ar Ka1 (air)'``, ``'Fe Ka1 escape'``,
        ``'Fe Ka1 + Fe Ka1 sum'``, ``'zero peak'``.
    keV : float
        Energy (keV).
    kind : str
        One of :data:`INSTRUMENT_KINDS`.
    rel_intensity : float
        Relative intensity within its kind (anode lines: as :func:`physics.anode_lines`).
    """

    name: str
    keV: float
    kind: str
    rel_intensity: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """``{'name', 'keV', 'kind'}``."""
        return {"name": self.name, "keV": float(self.keV), "kind": self.kind}


@dataclass(frozen=True)
class InstrumentPattern:
    """Instrument peaks expected in a spectrum.

    Attributes
    ----------
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float
        Scattering angle used for the Compton energies (degrees).
    theta_source : str
        ``'given'``, ``'data'`` (from the Compton peak) or ``'default'`` (90 degrees).
    peaks : tuple of InstrumentPeak
        Sorted by energy.
    """

    anode: str
    tube_kv: float
    theta_deg: float
    theta_source: str
    peaks: tuple[InstrumentPeak, ...]

    def of_kind(self, kind: str) -> list[InstrumentPeak]:
        """The peaks of one kind."""
        return [p for p in self.peaks if p.kind == kind]

    @property
    def energies_keV(self) -> np.ndarray:
        """``(n,)`` energies (keV)."""
        return np.array([p.keV for p in self.peaks], dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "anode": self.anode,
            "tube_kv": self.tube_kv,
            "theta_deg": self.theta_deg,
            "theta_source": self.theta_source,
            "peaks": [p.to_dict() for p in self.peaks],
        }


def _anode_groups(anode: str, tube_kv: float, fwhm_at_6keV: float) -> list[PatternPeak]:
    lines = physics.anode_lines(anode, tube_kv)
    return _pattern_peaks(anode, [ln for ln in lines if ln.rel_intensity >= 0.01], fwhm_at_6keV)


def _compton_extra_fwhm(keV: np.ndarray | float, theta_deg: float, broadening: float) -> Any:
    return physics.compton_extra_fwhm(keV, theta_deg, broadening)


def estimate_theta(
    counts: ArrayLike,
    energies: ArrayLike,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
) -> float | None:
    """Scattering angle (degrees) from the Compton peak beside the anode's K-alpha, or
    None: :func:`maxrf.physics.estimate_scatter_angle` (``counts`` first)."""
    return physics.estimate_scatter_angle(energies, counts, anode=anode, tube_kv=tube_kv,
                                          fwhm_at_6keV=fwhm_at_6keV)


def instrument_pattern(
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float | None = None,
    strong_peaks_keV: Sequence[float] = (),
    *,
    counts: ArrayLike | None = None,
    energies: ArrayLike | None = None,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
    air: bool = True,
    n_sum: int = 3,
    min_keV: float = 1.0,
) -> InstrumentPattern:
    """Instrument peaks expected in a spectrum, from the tube, the geometry and strong peaks.

    Parameters
    ----------
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float, optional
        Scattering angle (degrees, e.g. ``Calibration.theta_deg``). When None it is
        estimated from ``counts`` / ``energies`` (:func:`estimate_theta`), else 90.
    strong_peaks_keV : sequence of float
        Energies (keV) of the strongest peaks of the spectrum, strongest first (e.g. the
        K-alpha and K-beta of the main element): their Si escape peaks and the sum peaks
        of the first ``n_sum`` of them (every pair, each with itself: 2 x K-alpha,
        K-alpha + K-beta) are added.
    counts, energies : array_like, optional
        A spectrum and its energy axis (keV), to estimate ``theta_deg``.
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV (merges close anode lines).
    air : bool
        Add the argon K lines (measurement in air).
    n_sum : int
        How many of the strong peaks form sum peaks.
    min_keV : float
        Escape peaks below this energy (keV) are left out.

    Returns
    -------
    InstrumentPattern
        Rayleigh (anode K and L lines), Compton (anode lines shifted to ``theta_deg``),
        Si escape (of the anode K-alpha Rayleigh and Compton peaks and the strong peaks),
        sum, air (Ar K) and zero peaks, sorted by energy.

    Raises
    ------
    ParameterError
        Unsupported anode or bad numbers.
    """
    anode = physics.normalize_element(anode)
    groups = _anode_groups(anode, tube_kv, fwhm_at_6keV)
    theta, source = _scattering_angle(theta_deg, counts, energies, anode, tube_kv, fwhm_at_6keV)
    out: list[InstrumentPeak] = [InstrumentPeak("zero peak", 0.0, "zero", 1.0)]
    out += _anode_peaks(anode, groups, theta)
    if air:
        for g in _pattern_peaks("Ar", physics.element_lines("Ar", tube_kv, min_rel=0.01), fwhm_at_6keV):
            out.append(InstrumentPeak(f"Ar {g.name} (air)", g.energy_keV, "air", g.rel_intensity))
    out += _strong_peak_artefacts([float(v) for v in strong_peaks_keV], n_sum, min_keV)
    out.sort(key=lambda p: (p.keV, p.name))
    return InstrumentPattern(anode, float(tube_kv), float(theta), source, tuple(out))


def _scattering_angle(theta_deg: float | None, counts: ArrayLike | None,
                      energies: ArrayLike | None, anode: str, tube_kv: float,
                      fwhm_at_6keV: float) -> tuple[float, str]:
    """The angle (degrees) and where it came from: ``'given'``, ``'data'`` or ``'default'``."""
    if theta_deg is None and counts is not None and energies is not None:
        theta = estimate_theta(
            counts, energies, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm_at_6keV
        )
        source = "data" if theta is not None else "default"
        return (90.0 if theta is None else theta), source
    if theta_deg is None:
        return 90.0, "default"
    theta = float(theta_deg)
    if not 0.0 <= theta <= 180.0:
        raise ParameterError(f"theta_deg must be in 0..180 degrees, got {theta_deg!r}")
    return theta, "given"


def _anode_peaks(anode: str, groups: Sequence[PatternPeak], theta: float) -> list[InstrumentPeak]:
    """Rayleigh and Compton peaks of the anode lines, and the Si escape peaks of the strong
    K lines."""
    out = []
    fam_top = {f: max((g.rel_intensity for g in groups if g.family == f), default=1.0) for f in "KLM"}
    for g in groups:
        rel = g.rel_intensity
        out.append(InstrumentPeak(f"{anode} {g.name} Rayleigh", g.energy_keV, "rayleigh", rel))
        ec = float(physics.compton_shift(g.energy_keV, theta))
        out.append(InstrumentPeak(f"{anode} {g.name} Compton", ec, "compton", rel))
        if g.family == "K" and g.rel_intensity >= 0.5 * fam_top["K"]:
            for label, en in (("Rayleigh", g.energy_keV), ("Compton", ec)):
                if physics.escape_fraction(en) > 0:
                    esc = float(physics.escape_energy(en))
                    out.append(
                        InstrumentPeak(f"{anode} {g.name} {label} escape", esc, "escape", rel)
                    )
    return out


def _strong_peak_artefacts(strong: list[float], n_sum: int, min_keV: float) -> list[InstrumentPeak]:
    """Escape peaks of the strong peaks, and sum peaks of the first ``n_sum`` (every pair)."""
    out = []
    for en in strong:
        if physics.escape_fraction(en) > 0:
            esc = float(physics.escape_energy(en))
            if esc >= min_keV:
                out.append(InstrumentPeak(f"{en:.2f} keV escape", esc, "escape", 1.0))
    top = strong[: max(int(n_sum), 0)]
    for i in range(len(top)):
        for j in range(i, len(top)):
            out.append(
                InstrumentPeak(f"{top[i]:.2f} + {top[j]:.2f} keV sum", top[i] + top[j], "sum", 1.0)
            )
    return out


@dataclass(frozen=True)
class InstrumentWindow:
    """Where an instrument peak may stand in a spectrum: its energy and half-width.

    Attributes
    ----------
    name : str
        Label (``'Rh Ka1 Rayleigh'``, ``'Rh La1 Compton'``, ``'Rh Ka1 Compton escape'``...).
    keV : float
        Expected energy (keV).
    half_width_keV : float
        A peak within this distance (keV) is this instrument peak: one detector FWHM for
        sharp peaks; for Compton peaks their Doppler-broadened FWHM plus the shift of 15
        degrees of scattering angle (the angle is estimated, and the Compton profile is
        asymmetric, so noise on its top gives local maxima off its centre).
    kind : str
        One of :data:`INSTRUMENT_KINDS`.
    """

    name: str
    keV: float
    half_width_keV: float
    kind: str


def instrument_windows(
    anode: str, tube_kv: float, theta_deg: float, fwhm_at_6keV: float, *, air: bool = True
) -> list[InstrumentWindow]:
    """Energy windows of every anode Rayleigh and Compton line (K and L), their Si escape
    peaks and the air's argon lines: the peaks no sample element should be blamed for.

    Parameters
    ----------
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float
        Scattering angle (degrees).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    air : bool
        Include the argon K lines.

    Returns
    -------
    list of InstrumentWindow
    """
    anode = physics.normalize_element(anode)
    out: list[InstrumentWindow] = []
    lines = [ln for ln in physics.anode_lines(anode, tube_kv) if ln.rel_intensity >= 0.005]
    for ln in lines:
        e0 = float(ln.energy_keV)
        fw = float(physics.fwhm_keV(e0, fwhm_at_6keV))
        ec = float(physics.compton_shift(e0, theta_deg))
        spread = abs(float(physics.compton_shift(e0, min(theta_deg + 15.0, 180.0))) - ec)
        fwc = float(np.hypot(physics.fwhm_keV(ec, fwhm_at_6keV),
                             _compton_extra_fwhm(e0, theta_deg, 0.025)))
        wins = [(f"{anode} {ln.siegbahn} Rayleigh", e0, fw, "rayleigh"),
                (f"{anode} {ln.siegbahn} Compton", ec, fwc + spread, "compton")]
        for name, en, hw, _kind in list(wins):
            if physics.escape_fraction(en) > 0 and en > 2.5:
                wins.append((f"{name} escape", float(physics.escape_energy(en)), hw, "escape"))
        out += [InstrumentWindow(n, en, hw, k) for n, en, hw, k in wins]
    if air:
        for ln in physics.element_lines("Ar", tube_kv, min_rel=0.01):
            out.append(InstrumentWindow(f"Ar {ln.siegbahn} (air)", float(ln.energy_keV),
                                        float(physics.fwhm_keV(ln.energy_keV, fwhm_at_6keV)), "air"))
    return sorted(out, key=lambda w: w.keV)


def match_instrument(keV: float, windows: Sequence[InstrumentWindow]) -> InstrumentWindow | None:
    """The instrument window holding ``keV`` (the nearest relative to its width), or None."""
    best, best_d = None, math.inf
    for w in windows:
        d = abs(keV - w.keV) / w.half_width_keV
        if d <= 1.0 and d < best_d:
            best, best_d = w, d
    return best


def estimate_theta_from_lines(
    counts: ArrayLike,
    energies: ArrayLike,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = 0.145,
) -> float | None:
    """Scattering angle from the Compton partners of the anode's strongest lines, any family.

    For a tube whose K lines are not excited (W at 40 kV) or not on the axis, the Compton
    peaks of its L lines are all there is: the window around the strongest anode lines is
    fitted with their Rayleigh peaks (fixed energies, free amplitudes), their Compton
    peaks at ``compton_shift(E, theta)`` (ratios of :func:`maxrf.physics.anode_lines`)
    and a straight background, for every theta of a 1-degree grid; the best chi-square
    wins, if the Compton term improves it by 25 (5 sigma).

    Parameters
    ----------
    counts, energies : array_like
        ``(C,)`` spectrum (counts) and channel energies (keV).
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.

    Returns
    -------
    float or None
        Angle (degrees), or None when no Compton peak stands out.
    """
    y = np.asarray(counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    lines = [ln for ln in physics.anode_lines(anode, tube_kv)
             if e[0] < ln.energy_keV < e[-1] and ln.energy_keV > 2.0]
    if not lines:
        return None
    top = max(ln.rel_intensity for ln in lines)
    lines = [ln for ln in lines if ln.rel_intensity >= 0.05 * top]
    c = np.array([ln.energy_keV for ln in lines])
    a = np.array([ln.rel_intensity for ln in lines])
    lo = float(physics.compton_shift(c.min(), 180.0)) - 2.0 * float(physics.fwhm_keV(c.min(), fwhm_at_6keV))
    hi = c.max() + 2.0 * float(physics.fwhm_keV(c.max(), fwhm_at_6keV))
    sel = (e >= lo) & (e <= hi)
    if np.count_nonzero(sel) < 12:
        return None
    ew, yw = e[sel], y[sel]
    x = (ew - ew.mean()) / max(np.ptp(ew), 1e-9)
    rayleigh = [physics.gaussian_peaks(ew, [ci], [1.0], physics.fwhm_keV(ci, fwhm_at_6keV)) for ci in c]
    wgt = 1.0 / np.sqrt(np.maximum(ndimage.gaussian_filter1d(yw, 2.0), 1.0))
    base = np.column_stack([*rayleigh, np.ones_like(x), x]) * wgt[:, None]
    coef, *_ = np.linalg.lstsq(base, yw * wgt, rcond=None)
    chi_flat = float(np.sum((base @ coef - yw * wgt) ** 2))
    best = (math.inf, None)
    for theta in np.arange(20.0, 180.01, 1.0):
        cc = np.asarray(physics.compton_shift(c, theta))
        width = np.hypot(physics.fwhm_keV(cc, fwhm_at_6keV), _compton_extra_fwhm(c, theta, 0.0105))
        compton = physics.gaussian_peaks(ew, cc, a / a.sum(), width)
        design = np.column_stack([base, compton * wgt])
        coef, *_ = np.linalg.lstsq(design, yw * wgt, rcond=None)
        if coef[-1] <= 0:
            continue
        chi = float(np.sum((design @ coef - yw * wgt) ** 2))
        if chi < best[0]:
            best = (chi, float(theta))
    if best[1] is None or chi_flat - best[0] < 25.0:
        return None
    return best[1]
