"""Instrument peaks: anode lines scattered (Rayleigh, Compton), escape, sum, air, zero.

Holds :data:`INSTRUMENT_KINDS`, :class:`InstrumentPeak`, :class:`InstrumentPattern`,
:func:`estimate_theta` (scattering angle from the Compton peak) and
:func:`instrument_pattern`, with the anode line groups and the Compton broadening they
share with the fit templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.identify.patterns import PatternPeak, _pattern_peaks

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
    counts: Any,
    energies: Any,
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
    counts: Any | None = None,
    energies: Any | None = None,
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
    if theta_deg is None and counts is not None and energies is not None:
        theta = estimate_theta(
            counts, energies, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm_at_6keV
        )
        source = "data" if theta is not None else "default"
        theta = 90.0 if theta is None else theta
    elif theta_deg is None:
        theta, source = 90.0, "default"
    else:
        theta, source = float(theta_deg), "given"
        if not 0.0 <= theta <= 180.0:
            raise ParameterError(f"theta_deg must be in 0..180 degrees, got {theta_deg!r}")
    out: list[InstrumentPeak] = [InstrumentPeak("zero peak", 0.0, "zero", 1.0)]
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
    if air:
        for g in _pattern_peaks("Ar", physics.element_lines("Ar", tube_kv, min_rel=0.01), fwhm_at_6keV):
            out.append(InstrumentPeak(f"Ar {g.name} (air)", g.energy_keV, "air", g.rel_intensity))
    strong = [float(v) for v in strong_peaks_keV]
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
    out.sort(key=lambda p: (p.keV, p.name))
    return InstrumentPattern(anode, float(tube_kv), float(theta), source, tuple(out))
