"""Line patterns of the elements: the pieces of the puzzle.

Holds :class:`PatternPeak` and :class:`ElementPattern`, :func:`element_pattern` (cached
by :func:`_element_pattern`), and the helpers that merge lines closer than the detector
resolution into pattern peaks with their Si escape peaks (:func:`_merge_lines`,
:func:`_pattern_peaks`, :func:`_escape_fraction`, :func:`_escape_energy`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.identify.constants import MERGE_FWHM


@dataclass(frozen=True)
class PatternPeak:
    """One peak of a line pattern: lines closer than the detector resolution, merged.

    Attributes
    ----------
    element : str
        Chemical symbol.
    name : str
        Siegbahn name of the strongest member (``'Ka1'``).
    iupac : str
        IUPAC name of the strongest member (``'K-L3'``).
    energy_keV : float
        Intensity-weighted energy of the members (keV).
    rel_intensity : float
        Summed relative intensity of the members; the strongest peak of the pattern is 1.
    family : str
        ``'K'``, ``'L'`` or ``'M'``.
    lines : tuple of physics.Line
        The members.
    escape_keV : float or None
        Energy of its Si K-alpha escape peak (keV), None below the Si K edge.
    escape_fraction : float
        Share of the peak's photons in the escape peak.
    """

    element: str
    name: str
    iupac: str
    energy_keV: float
    rel_intensity: float
    family: str
    lines: tuple[physics.Line, ...]
    escape_keV: float | None
    escape_fraction: float


@dataclass(frozen=True)
class ElementPattern:
    """The characteristic line pattern of an element (maxrf4u's ``plot_ptrn`` data).

    Attributes
    ----------
    element : str
        Chemical symbol.
    name : str
        Element name (``'Iron'``).
    tube_kv : float or None
        Tube voltage (kV) the relative intensities assume.
    lines : tuple of physics.Line
        Every line kept (energy, Siegbahn and IUPAC names, relative intensity).
    peaks : tuple of PatternPeak
        The lines as a detector resolves them (merged within :data:`MERGE_FWHM` FWHM).
    color : tuple of float
        ``(r, g, b)`` from :func:`maxrf.physics.element_color`.
    """

    element: str
    name: str
    tube_kv: float | None
    lines: tuple[physics.Line, ...]
    peaks: tuple[PatternPeak, ...]
    color: tuple[float, float, float]

    @property
    def energies_keV(self) -> np.ndarray:
        """``(n_peaks,)`` peak energies (keV)."""
        return np.array([p.energy_keV for p in self.peaks], dtype=float)

    @property
    def rel_intensities(self) -> np.ndarray:
        """``(n_peaks,)`` relative intensities (strongest = 1)."""
        return np.array([p.rel_intensity for p in self.peaks], dtype=float)

    @property
    def peaks_xy(self) -> np.ndarray:
        """``(n_peaks, 2)`` ``[keV, relative intensity]`` as maxrf4u's ``peaks_xy``."""
        return np.column_stack([self.energies_keV, self.rel_intensities]).reshape(-1, 2)

    @property
    def escape_keV(self) -> np.ndarray:
        """``(n, 2)`` ``[keV, relative intensity]`` of the Si escape peaks."""
        rows = [
            (p.escape_keV, p.rel_intensity * p.escape_fraction)
            for p in self.peaks
            if p.escape_keV is not None and p.escape_fraction > 0
        ]
        return np.array(rows, dtype=float).reshape(-1, 2)

    @property
    def main(self) -> PatternPeak | None:
        """The strongest peak (None for an empty pattern)."""
        return max(self.peaks, key=lambda p: p.rel_intensity) if self.peaks else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``element``, ``name``, ``color``, ``lines``, ``peaks``)."""
        return {
            "element": self.element,
            "name": self.name,
            "tube_kv": self.tube_kv,
            "color": list(self.color),
            "lines": [
                {
                    "line": ln.siegbahn,
                    "iupac": ln.iupac,
                    "keV": ln.energy_keV,
                    "rel_intensity": ln.rel_intensity,
                    "family": ln.family,
                }
                for ln in self.lines
            ],
            "peaks": [
                {
                    "line": p.name,
                    "iupac": p.iupac,
                    "keV": p.energy_keV,
                    "rel_intensity": p.rel_intensity,
                    "escape_keV": p.escape_keV,
                }
                for p in self.peaks
            ],
        }


@functools.lru_cache(maxsize=65536)
def _escape_fraction(keV: float, detector: str = "Si") -> float:
    """Cached :func:`maxrf.physics.escape_fraction` of one energy (keV)."""
    return float(physics.escape_fraction(float(keV), detector))


@functools.lru_cache(maxsize=65536)
def _escape_energy(keV: float, detector: str = "Si") -> float:
    """Cached :func:`maxrf.physics.escape_energy` of one energy (keV)."""
    return float(physics.escape_energy(float(keV), detector))


def _merge_lines(
    lines: Sequence[physics.Line], fwhm_at_6keV: float, merge_fwhm: float = MERGE_FWHM
) -> list[list[physics.Line]]:
    """Group lines (sorted by energy) whose neighbours are closer than ``merge_fwhm`` FWHM."""
    groups: list[list[physics.Line]] = []
    for ln in sorted(lines, key=lambda x: x.energy_keV):
        if groups:
            last = groups[-1][-1]
            tol = merge_fwhm * float(physics.fwhm_keV(ln.energy_keV, fwhm_at_6keV))
            if ln.energy_keV - last.energy_keV <= tol and ln.family == last.family:
                groups[-1].append(ln)
                continue
        groups.append([ln])
    return groups


def _pattern_peaks(
    element: str, lines: Sequence[physics.Line], fwhm_at_6keV: float, detector: str = "Si"
) -> list[PatternPeak]:
    out = []
    for grp in _merge_lines(lines, fwhm_at_6keV):
        w = np.array([ln.rel_intensity for ln in grp])
        e = np.array([ln.energy_keV for ln in grp])
        top = grp[int(np.argmax(w))]
        energy = float(np.sum(w * e) / np.sum(w))
        frac = _escape_fraction(energy, detector)
        esc = _escape_energy(energy, detector) if frac > 0 else None
        out.append(
            PatternPeak(
                element=element,
                name=top.siegbahn,
                iupac=top.iupac,
                energy_keV=energy,
                rel_intensity=float(w.sum()),
                family=top.family,
                lines=tuple(grp),
                escape_keV=esc,
                escape_fraction=frac if esc is not None else 0.0,
            )
        )
    if out:
        top = max(p.rel_intensity for p in out)
        out = [
            PatternPeak(**{**p.__dict__, "rel_intensity": p.rel_intensity / top}) for p in out
        ]
    return out


def element_pattern(
    element: str | int,
    tube_kv: float | None = 40.0,
    *,
    min_keV: float = 1.0,
    min_rel: float = 0.01,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
) -> ElementPattern:
    """The line pattern of an element: energies, names, relative intensities, escapes, colour.

    Parameters
    ----------
    element : str or int
        Chemical symbol (any case) or atomic number.
    tube_kv : float or None
        Tube voltage (kV): only lines whose level is excited are kept (None: all levels).
    min_keV : float
        Lines below this energy (keV) are left out.
    min_rel : float
        Lines weaker than this share of the strongest are left out.
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV: lines closer than half a FWHM form one peak.

    Returns
    -------
    ElementPattern
        Empty ``lines`` / ``peaks`` when no line is excited above ``min_keV``.

    Raises
    ------
    ParameterError
        Unknown element or invalid number.

    Examples
    --------
    >>> p = element_pattern("Ca")
    >>> [round(x, 2) for x in p.energies_keV]
    [3.69, 4.01]
    """
    symbol = physics.normalize_element(element)
    kv = None if tube_kv is None else float(tube_kv)
    return _element_pattern(symbol, kv, float(min_keV), float(min_rel), float(fwhm_at_6keV))


@functools.lru_cache(maxsize=4096)
def _element_pattern(
    symbol: str, tube_kv: float | None, min_keV: float, min_rel: float, fwhm_at_6keV: float
) -> ElementPattern:
    lines = physics.element_lines(symbol, tube_kv, min_keV=min_keV, min_rel=min_rel)
    peaks = _pattern_peaks(symbol, lines, fwhm_at_6keV)
    name = physics.table.atomic_name(symbol).capitalize()
    return ElementPattern(
        symbol, name, tube_kv, tuple(lines), tuple(peaks), physics.element_color(symbol)
    )
