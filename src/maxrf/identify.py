"""Element identification: which elements (and which instrument artefacts) explain the peaks.

A hotmax spectrum is a puzzle: its peaks are the characteristic lines of one or more
elements plus instrument artefacts (anode lines scattered elastically -- Rayleigh -- and
inelastically -- Compton --, Si escape peaks, pile-up sum peaks, argon of the air, the zero
peak). This module gives the pieces of the puzzle (:func:`element_pattern`,
:func:`instrument_pattern`) and solves it automatically (:func:`identify`), with the
evidence a user can check.

Algorithm of :func:`identify` (one spectrum)
--------------------------------------------
1. **Preparation.** Baseline (SNIP of :mod:`maxrf.peaks`, lifted to the mean level of the
   noise by :func:`maxrf.peaks.restore_level`) and Poisson noise envelope (3 sigma), or the
   ones stored with the hotmax atlas; observed peaks = local maxima 4 sigma above the
   baseline and above the envelope. Detector resolution ``fwhm_at_6keV`` from the widths of
   the strongest peaks and the zero peak (:func:`estimate_fwhm6`, Fano model of
   :func:`maxrf.physics.fwhm_keV`); scattering angle from the calibration or from the
   Compton peak beside the anode's K-alpha Rayleigh peak (:func:`estimate_theta`). Over an
   atlas both come from the sum of its spectra.
2. **Templates** on the calibrated axis, built from :mod:`maxrf.physics` (lines, relative
   intensities, Gaussian response at the detector resolution, Si escape fractions): the
   instrument -- anode K-alpha and K-beta Rayleigh peaks and their low-energy tail, the
   Compton K peaks (two Doppler widths), each anode L line on its own (their ratios change
   with the sample's absorption edges), argon -- and every *candidate* element: Z 11..92,
   not the anode, no noble gas or short-lived element, whose strongest line of a family
   lies within 1.5 FWHM of an observed peak (:func:`candidate_elements`). An element is a
   few columns: one per line group (K-alpha, K-beta, the L1, L2, L3 sub-shells, M), one per
   family for its escape peaks and one for its low-energy peak tail. Amplitude ratios of 1
   reproduce :func:`maxrf.physics.element_spectrum` exactly; linear constraints
   ``x_i <= c x_j`` let them move only as far as the model is uncertain (K-beta/K-alpha
   within :data:`FAMILY_SLACK`, or down to :data:`LIGHT_KBETA_MIN` for Z <= 17; L
   sub-shells within :data:`SUBSHELL_SLACK`; families within :data:`FAMILY_SLACK`, except
   that a family below :data:`SOFT_KEV` (absorption), above :data:`HARD_KEV` (detector
   efficiency) or excited with an over-voltage below :data:`MIN_OVERVOLTAGE` may fade
   away; escape peaks up to nominal, tails up to :data:`TAIL_MAX`). So Pb M lines cannot
   stand in for S K-alpha without Pb L lines, while the weak, far K lines of Sn at 50 kV
   do not veto the Sn L lines.
3. **Fit.** Weighted non-negative least squares of the baseline-subtracted spectrum (the
   Gram matrix of all templates is formed once per weighting; every sub-model is solved on
   it; a violated constraint is made active). Weights ``1 / variance``: Poisson counts plus
   the model's own systematic uncertainty -- :data:`SYSTEMATIC` per line group (a few per
   cent for K lines, more for L sub-shells, M lines, escape peaks) and
   :data:`DYNAMIC_RANGE` of the largest modelled peak up to 1 keV above a channel (the
   low-energy tail and shelf of incomplete charge collection). Real detector artefacts
   near a 10**5-count peak are thus not "explained" by phantom elements.
4. **Instrument first, then forward selection.** Starting from the instrument model, each
   candidate is added in turn; the one with the largest chi-square improvement that
   passes every test of a *present* element (below) is accepted, the weights are updated,
   and the search repeats. A **backward** pass then removes any accepted element whose own
   likelihood-ratio test fails in the final model (an element accepted early may become
   redundant). Sum peaks of the three strongest fitted lines (2 x K-alpha, K-alpha +
   K-beta, cross sums) join the instrument model and the selection runs once more.
5. **Tests** of an element in a model:

   * ``delta_chi2``: chi-square increase when its columns are removed (likelihood-ratio
     statistic; present needs :data:`DCHI2_PRESENT` = 25, i.e. 5 sigma);
   * ``z``: its fitted line counts over their standard error (present: :data:`Z_PRESENT`);
   * lines: each line group is looked for in the residual of the full model with that
     line's own fitted contribution added back -- a Gaussian at the expected energy on a
     local straight background, +-1.5 FWHM. It is *seen* when 3 sigma above zero, at least
     :data:`LINE_RATIO_MIN` of the expected area, above the envelope and not shifted by
     more than :data:`SHIFT_FWHM` FWHM; it is *expected visible* when its fitted area is
     :data:`VISIBLE_Z` standard errors of that local fit. ``line_fraction`` is the share
     of the expected-visible lines seen, each weighted by its expected significance
     (capped at :data:`SIGNIFICANCE_CAP`): a strong line that is missing speaks against the
     element whatever its relative intensity (a weak line seen all the same counts too).
     Present needs :data:`LINE_FRACTION_PRESENT`, its main line (the model's strongest
     rising above the envelope) seen, a line seen where it was expected clearly or two
     lines seen (one weak peak is ambiguous: As K-alpha or Pb L-alpha?), and, for an element
     outside :data:`COMMON_ELEMENTS`, two lines seen (above :data:`SOFT_KEV` when it has
     visible lines there). Lines under the anode's broad K Rayleigh/Compton peaks cannot be
     verified and do not count.

   Overlaps are resolved by these tests, not by rules: Zn is accepted only if Cu alone
   cannot explain 8.6 keV, As under Pb L-alpha only if As K-beta (11.73 keV) and the excess
   at 10.5 keV over what Pb L-l / L-beta / L-gamma imply demand it, Ti under Ba L-alpha only
   if the Ba L pattern cannot account for 4.51 and 4.93 keV, Mn K-beta / Fe K-alpha, Hg /
   Au L lines likewise.
6. **Status.** ``present`` (all tests passed), ``possible`` (``delta_chi2 >=``
   :data:`DCHI2_POSSIBLE`, ``z >=`` :data:`Z_POSSIBLE`, main line seen) or ``absent``.
   ``confidence = line_fraction * z**2 / (z**2 + Z_HALF**2)`` in [0, 1]. Each element's
   fitted ``counts`` (total area of its lines) and ``relative`` (to the strongest present
   element of the spectrum) are reported; a present element is a **trace** when
   ``relative <`` :data:`TRACE_FRACTION` (1 %): real standards show their impurities
   (Fe in Ni, Hf in Zr...) and unmodelled detector or diffraction peaks at that level.

Instrument peaks are labelled as such and never reported as elements: the anode element
is not a candidate, argon appears only as air. Observed peaks left unexplained by the final
model (less than half of their net height modelled, or a residual above 5 sigma) are
listed in ``unexplained_keV`` (over an atlas: unless a line of an element found elsewhere
in the scan, or an instrument peak, matches them).

Over a DataStack, every hotmax spectrum is identified on its own; an element is present
if it is present in any spectrum, and its evidence lists the lines and the spectra.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xraydb
from scipy import linalg, ndimage, optimize, sparse, special

from maxrf import peaks as _peaks
from maxrf import physics
from maxrf.errors import CalibrationError, MaxrfError, OutputLocationError, ParameterError

__all__ = [
    "DCHI2_POSSIBLE",
    "DCHI2_PRESENT",
    "ElementPattern",
    "ElementResult",
    "Identification",
    "InstrumentPattern",
    "InstrumentPeak",
    "LineEvidence",
    "PatternPeak",
    "SpectrumIdentification",
    "TRACE_FRACTION",
    "Z_POSSIBLE",
    "Z_PRESENT",
    "candidate_elements",
    "element_pattern",
    "estimate_fwhm6",
    "estimate_theta",
    "identify",
    "identify_spectrum",
    "instrument_pattern",
    "write_identification",
]

#: chi-square improvement (likelihood-ratio statistic) needed for ``present`` (5 sigma)
DCHI2_PRESENT: float = 25.0
#: ... and for ``possible`` (3 sigma)
DCHI2_POSSIBLE: float = 9.0
#: significance of the element's fitted line counts (counts / standard error) for ``present``
Z_PRESENT: float = 5.0
#: ... and for ``possible``
Z_POSSIBLE: float = 3.0
#: significance at which the confidence is one half (all lines seen)
Z_HALF: float = 5.0
#: share of the expected-visible lines (weighted by expected significance) seen, for present
LINE_FRACTION_PRESENT: float = 0.75
#: a line is expected to be seen when its fitted area is this many standard errors of a local
#: fit (and its height rises above the noise envelope): lines near the limit do not count
VISIBLE_Z: float = 6.0
#: expected significance (sigma) above which all visible lines weigh the same in the line
#: fraction
SIGNIFICANCE_CAP: float = 20.0
#: a line counts as seen when its local amplitude is at least this share of the expected one
LINE_RATIO_MIN: float = 0.25
#: local significance (sigma) of a seen line
LINE_Z_MIN: float = 3.0
#: relative uncertainty of the model on the wings of its peaks (within 1.5 FWHM): shape
#: and energy-calibration errors
WING_ERROR: float = 0.01
#: detector dynamic range: a residual smaller than this share of the largest modelled peak
#: up to 1 keV above it is treated as detector response (the low-energy tail and shelf of
#: incomplete charge collection), not as a line
DYNAMIC_RANGE: float = 0.002
#: a seen line may be off its expected energy by this many FWHM (plus two standard errors)
SHIFT_FWHM: float = 0.25
#: relative uncertainty of modelled intensities, by line family / L sub-shell / component
#: kind: the K-beta/K-alpha ratios are transition probabilities (good), L sub-shell and M
#: vacancy shares depend on the excitation (uncertain), escape fractions on the detector
SYSTEMATIC: dict[str, float] = {
    "K": 0.05, "L3": 0.10, "L2": 0.25, "L1": 0.30, "M": 0.30, "escape": 0.5,
    "rayleigh": 0.05, "compton": 0.15, "air": 0.10, "sum": 0.30, "tail": 0.5, "element": 0.05,
}
#: L sub-shell groups (L1, L2, L3) may differ from the model ratios by this factor
SUBSHELL_SLACK: float = 1.5
#: K-beta of an element with Z <= 17 may be as weak as this share of the model's
LIGHT_KBETA_MIN: float = 0.2
#: a line family below this energy (keV) may be absorbed away (air, windows, the sample)
SOFT_KEV: float = 4.0
#: a line family above this energy (keV) may be lost to the detector's falling efficiency
HARD_KEV: float = 20.0
#: a line family whose edge is excited with less over-voltage than this is uncertain
MIN_OVERVOLTAGE: float = 2.0
#: a peak's low-energy tail holds at most this share of its area
TAIL_MAX: float = 0.15
#: significance (area / standard error) of a labelled instrument peak below the envelope
INSTRUMENT_Z: float = 5.0
#: a present element whose counts are below this share of the strongest element is a trace
TRACE_FRACTION: float = 0.01
#: candidate elements: a line within this many FWHM of an observed peak
CANDIDATE_WINDOW_FWHM: float = 1.5
#: lines closer than this many FWHM are one peak of a pattern (Ka1 + Ka2)
MERGE_FWHM: float = 0.5
#: a line family's (and the escape peaks') efficiency may exceed the model by this share
FAMILY_SLACK: float = 0.15
#: significance (sigma) of an observed peak
PEAK_SIGMA: float = 4.0
#: lowest energy (keV) fitted (the zero peak and the detector's cut-off lie below)
MIN_FIT_KEV: float = 0.8
#: elements never proposed: noble gases (argon is an instrument peak) and elements too
#: short-lived to be in an artwork
EXCLUDED: frozenset[str] = frozenset(
    {"Ne", "Ar", "Kr", "Xe", "Rn", "Tc", "Pm", "Po", "At", "Fr", "Ra", "Ac", "Pa"}
)
#: elements common in artworks (pigments, grounds, metals, supports): any other element needs
#: at least two of its lines seen to be present (above SOFT_KEV when it has visible lines
#: there) -- a single peak of a rare element is more likely a diffraction or an unmodelled
#: detector peak
COMMON_ELEMENTS: frozenset[str] = frozenset(
    "Na Mg Al Si P S Cl K Ca Ti Cr Mn Fe Co Ni Cu Zn As Se Sr Zr Ag Cd Sn Sb Ba Au Hg Pb Bi".split()
)
#: statuses, strongest first
STATUSES: tuple[str, ...] = ("present", "possible", "absent")

_SLOPE = physics.FWHM_PER_SIGMA**2 * physics.FANO_SI * physics.PAIR_ENERGY_SI_KEV
_SQRT2PI = math.sqrt(2.0 * math.pi)


# =========================================================================== patterns
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
    """The characteristic line pattern of an element (the seed's ``plot_ptrn`` data).

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
        """``(n_peaks, 2)`` ``[keV, relative intensity]`` as the seed's ``peaks_xy``."""
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
    fwhm_at_6keV: float = 0.145,
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
    name = str(xraydb.atomic_name(xraydb.atomic_number(symbol))).capitalize()
    return ElementPattern(
        symbol, name, tube_kv, tuple(lines), tuple(peaks), physics.element_color(symbol)
    )


# --------------------------------------------------------------------------- instrument
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
    return broadening * np.asarray(keV) * math.sqrt(2.0 * (1.0 - math.cos(math.radians(theta_deg))))


def estimate_theta(
    counts: Any,
    energies: Any,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = 0.145,
) -> float | None:
    """Scattering angle from the Compton peak beside the anode's K-alpha Rayleigh peak.

    The window from the 180-degree Compton energy of K-alpha to just above K-alpha is
    fitted with the Rayleigh peak (fixed position), a Compton peak at ``compton_shift(Ka,
    theta)`` and a straight background, for every theta of a 0.5-degree grid; the best
    chi-square wins (:func:`maxrf.physics.compton_shift` / ``detector_angle``).

    Parameters
    ----------
    counts : array_like
        ``(C,)`` spectrum (counts per channel).
    energies : array_like
        ``(C,)`` channel energies (keV).
    anode : str
        Tube anode (needs K lines on the axis).
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.

    Returns
    -------
    float or None
        Angle (degrees), or None when the anode K lines are not on the axis or no Compton
        peak stands out.
    """
    y = np.asarray(counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    k_lines = [ln for ln in physics.anode_lines(anode, tube_kv) if ln.family == "K"]
    if not k_lines:
        return None
    ka = [ln for ln in k_lines if ln.siegbahn.startswith("Ka")]
    if not ka:
        return None
    w = np.array([ln.rel_intensity for ln in ka])
    eka = float(np.sum(w * [ln.energy_keV for ln in ka]) / w.sum())
    f_ka = float(physics.fwhm_keV(eka, fwhm_at_6keV))
    lo = float(physics.compton_shift(eka, 180.0)) - 2.0 * f_ka
    hi = eka + 1.5 * f_ka
    sel = (e >= lo) & (e <= hi)
    if np.count_nonzero(sel) < 12 or e[-1] < eka:
        return None
    ew, yw = e[sel], y[sel]
    c = np.array([ln.energy_keV for ln in ka])
    a = np.array([ln.rel_intensity for ln in ka])
    rayleigh = physics.gaussian_peaks(ew, c, a / a.sum(), physics.fwhm_keV(c, fwhm_at_6keV))
    x = (ew - ew.mean()) / max(np.ptp(ew), 1e-9)
    wgt = 1.0 / np.sqrt(np.maximum(ndimage.gaussian_filter1d(yw, 2.0), 1.0))
    best = (math.inf, None)
    chi_flat = None
    for theta in np.arange(20.0, 180.01, 0.5):
        cc = np.asarray(physics.compton_shift(c, theta))
        width = np.sqrt(
            physics.fwhm_keV(cc, fwhm_at_6keV) ** 2 + _compton_extra_fwhm(c, theta, 0.0105) ** 2
        )
        compton = physics.gaussian_peaks(ew, cc, a / a.sum(), width)
        design = np.column_stack([rayleigh, compton, np.ones_like(x), x]) * wgt[:, None]
        coef, *_ = np.linalg.lstsq(design, yw * wgt, rcond=None)
        if coef[1] <= 0:
            continue
        chi = float(np.sum((design @ coef - yw * wgt) ** 2))
        if chi < best[0]:
            best = (chi, float(theta))
    if best[1] is None:
        return None
    design = np.column_stack([rayleigh, np.ones_like(x), x]) * wgt[:, None]
    coef, *_ = np.linalg.lstsq(design, yw * wgt, rcond=None)
    chi_flat = float(np.sum((design @ coef - yw * wgt) ** 2))
    if chi_flat - best[0] < 25.0:  # no Compton peak stands out (5 sigma)
        return None
    return best[1]


def instrument_pattern(
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float | None = None,
    strong_peaks_keV: Sequence[float] = (),
    *,
    counts: Any | None = None,
    energies: Any | None = None,
    fwhm_at_6keV: float = 0.145,
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


# =========================================================================== fitting
@functools.lru_cache(maxsize=1)
def _symbols() -> tuple[str, ...]:
    """Symbols of Z = 11..92."""
    return tuple(str(xraydb.atomic_symbol(z)) for z in range(11, 93))


def candidate_elements(
    peaks_keV: Sequence[float],
    *,
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = 0.145,
    exclude: Sequence[str] = (),
    window_fwhm: float = CANDIDATE_WINDOW_FWHM,
    min_rel: float = 0.05,
    max_keV: float | None = None,
) -> list[str]:
    """Elements (Z 11..92) whose main line of a family lies within ``window_fwhm`` FWHM of an
    observed peak (a family's weaker lines cannot be seen without its strongest).

    Parameters
    ----------
    peaks_keV : sequence of float
        Observed peak energies (keV).
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    exclude : sequence of str
        Elements never proposed (the anode); :data:`EXCLUDED` always are.
    window_fwhm : float
        Match window in FWHM at the line energy.
    min_rel : float
        Only pattern peaks at least this strong (relative to the element's strongest) count.
    max_keV : float, optional
        Lines above this energy (keV) are not on the axis and do not count.

    Returns
    -------
    list of str
        Symbols by atomic number.
    """
    obs = np.sort(np.asarray(list(peaks_keV), dtype=float))
    skip = set(EXCLUDED) | {physics.normalize_element(x) for x in exclude}
    out = []
    if obs.size == 0:
        return out
    kv = None if tube_kv is None else float(tube_kv)
    for sym in _symbols():
        if sym in skip:
            continue
        pat = _element_pattern(sym, kv, 1.0, 0.005, round(float(fwhm_at_6keV), 4))
        for fam in ("K", "L", "M"):
            peaks = [p for p in pat.peaks if p.family == fam and p.energy_keV >= MIN_FIT_KEV
                     and (max_keV is None or p.energy_keV <= max_keV)]
            if not peaks:
                continue
            p = max(peaks, key=lambda q: q.rel_intensity)
            if p.rel_intensity < min_rel:
                continue
            tol = window_fwhm * float(physics.fwhm_keV(p.energy_keV, fwhm_at_6keV))
            k = np.searchsorted(obs, p.energy_keV)
            near = [obs[i] for i in (k - 1, k) if 0 <= i < obs.size]
            if any(abs(v - p.energy_keV) <= tol for v in near):
                out.append(sym)
                break
    return out


@dataclass
class _Part:
    """A peak of a fit component (for evidence and labels): ``frac`` of the component's area."""

    label: str
    keV: float
    frac: float
    fwhm: float
    kind: str  # 'line', 'escape', 'rayleigh', 'compton', 'air', 'sum'
    iupac: str = ""
    rel: float = 0.0  # relative intensity within its element (pattern peak)
    family: str = ""


@dataclass
class _Component:
    """One column of the fit: a template (counts per channel for a unit amplitude)."""

    name: str
    kind: str  # 'element', 'tail', 'rayleigh', 'compton', 'air', 'sum'
    template: np.ndarray
    parts: list[_Part]
    element: str | None = None
    unc: np.ndarray | None = None  # systematic uncertainty (counts per unit amplitude)
    atom_w: dict[int, float] | None = None  # element columns: atom index -> weight

    def __post_init__(self) -> None:
        if self.unc is None:
            self.unc = SYSTEMATIC.get(self.kind, 0.1) * np.abs(self.template)


@dataclass
class _Atom:
    """A pattern peak of an element (or its escape peak) as a template of its own."""

    part: _Part
    template: np.ndarray
    tail: np.ndarray | None
    lines: tuple[physics.Line, ...] = ()


def _tail_profile(e: np.ndarray, keV: float, fwhm: float, slope_sigmas: float = 2.5) -> np.ndarray:
    """Unit-area low-energy exponential tail convolved with the detector Gaussian (per channel).

    Incomplete charge collection gives real peaks a tail on their low-energy side; this is
    the tail term of the Hypermet function, ``exp((x - E)/beta) * erfc(...)``.
    """
    s = fwhm / physics.FWHM_PER_SIGMA
    beta = slope_sigmas * s
    u = (e - keV) / s
    with np.errstate(over="ignore", under="ignore"):
        arg = np.clip(u * s / beta + 0.5 * (s / beta) ** 2, -700.0, 700.0)
        dens = np.exp(arg) * special.erfc((u + s / beta) / math.sqrt(2.0)) / (2.0 * beta)
    out = np.nan_to_num(dens) * np.gradient(e)
    return out


def _element_atoms(el: str, e: np.ndarray, tube_kv: float, fwhm6: float) -> list[_Atom]:
    """Pattern peaks of ``el`` (and their escape peaks) whose templates sum to
    :func:`maxrf.physics.element_spectrum` (same lines, areas, widths and escapes)."""
    lines = physics.element_lines(el, tube_kv)
    if not lines:
        return []
    total = sum(ln.rel_intensity for ln in lines)
    pattern = {p.lines: p for p in _pattern_peaks(el, lines, fwhm6)}
    atoms: list[_Atom] = []
    for grp in _merge_lines(lines, fwhm6):
        p = pattern[tuple(grp)]
        c = np.array([ln.energy_keV for ln in grp])
        a = np.array([ln.rel_intensity for ln in grp]) / total
        f = np.array([_escape_fraction(v) for v in c])
        width = np.atleast_1d(physics.fwhm_keV(c, fwhm6))
        main = physics.gaussian_peaks(e, c, a * (1 - f), width)
        share = float(a.sum())
        tail = sum(
            (ai * (1 - fi) * _tail_profile(e, ci, wi) for ci, ai, fi, wi in zip(c, a, f, width)),
            start=np.zeros(e.size),
        )
        fw = float(physics.fwhm_keV(p.energy_keV, fwhm6))
        atoms.append(
            _Atom(
                _Part(p.name, p.energy_keV, float(np.sum(a * (1 - f))), fw, "line", p.iupac,
                      p.rel_intensity, p.family),
                main,
                tail,
                tuple(grp),
            )
        )
        esc = f > 0
        if np.any(esc):
            ce = np.array([_escape_energy(v) for v in c[esc]])
            tmpl = physics.gaussian_peaks(e, ce, a[esc] * f[esc], physics.fwhm_keV(ce, fwhm6))
            pe = float(np.sum(ce * a[esc] * f[esc]) / np.sum(a[esc] * f[esc]))
            atoms.append(
                _Atom(
                    _Part(f"{p.name} escape", pe, float(np.sum(a[esc] * f[esc])),
                          float(physics.fwhm_keV(pe, fwhm6)), "escape", p.iupac,
                          p.rel_intensity * p.escape_fraction, p.family),
                    tmpl,
                    None,
                    tuple(grp),
                )
            )
        del share
    return atoms


def _atom_eps(part: _Part) -> float:
    """Relative uncertainty of a pattern peak's modelled intensity (see :data:`SYSTEMATIC`)."""
    if part.kind == "escape":
        return SYSTEMATIC["escape"]
    if part.family == "L":
        sub = part.iupac.split("-")[0].split(",")[0].strip()
        return SYSTEMATIC.get(sub, SYSTEMATIC["L1"])
    return SYSTEMATIC.get(part.family, SYSTEMATIC["M"])


def _combine(
    name: str, kind: str, atoms: Sequence[_Atom], weights: Sequence[float], el: str, *,
    tail: bool = False,
) -> _Component:
    """A column made of element atoms with weights (negative weights: deficit columns)."""
    size = atoms[0].template.size if atoms else 0
    template = np.zeros(size)
    unc2 = np.zeros(size)
    parts: list[_Part] = []
    atom_w: dict[int, float] = {}
    for k, (atom, w) in enumerate(zip(atoms, weights)):
        if w == 0:
            continue
        if tail:
            if atom.tail is not None:
                template += w * atom.tail
            continue
        template += w * atom.template
        unc2 += (_atom_eps(atom.part) * w * atom.template) ** 2
        atom_w[k] = float(w)
        p = atom.part
        parts.append(_Part(p.label, p.keV, w * p.frac, p.fwhm, p.kind, p.iupac, p.rel, p.family))
    if tail:
        return _Component(name, "tail", template, parts, el)
    return _Component(name, kind, template, parts, el, np.sqrt(unc2), atom_w)


def _line_component(
    name: str,
    kind: str,
    e: np.ndarray,
    groups: Sequence[PatternPeak],
    fwhm6: float,
    *,
    label: str,
    shift_theta: float | None = None,
    broadening: float = 0.0,
    element: str | None = None,
    tail: bool = False,
) -> _Component | None:
    """A component made of pattern peaks (anode lines scattered, air lines), with escapes."""
    if not groups:
        return None
    c = np.array([g.energy_keV for g in groups])
    a = np.array([g.rel_intensity for g in groups])
    a = a / a.sum()
    extra = np.zeros_like(c)
    if shift_theta is not None:
        extra = np.asarray(_compton_extra_fwhm(c, shift_theta, broadening), dtype=float)
        c = np.asarray(physics.compton_shift(c, shift_theta), dtype=float)
    if tail:
        width = np.hypot(physics.fwhm_keV(c, fwhm6), extra)
        template = sum((ai * _tail_profile(e, ci, wi) for ci, ai, wi in zip(c, a, width)),
                       start=np.zeros(e.size))
        return _Component(name, "tail", template, [], element)
    template = physics.line_spectrum(e, c, a, fwhm_at_6keV=fwhm6, extra_fwhm_keV=extra)
    if not template.sum() > 1e-3:
        return None
    parts = []
    f = np.array([_escape_fraction(v) for v in c])
    for g, ci, ai, xi, fi in zip(groups, c, a, extra, f):
        fw = float(np.hypot(physics.fwhm_keV(ci, fwhm6), xi))
        parts.append(_Part(f"{g.element} {g.name} {label}".strip(), float(ci), ai * (1 - fi), fw, kind,
                           g.iupac, g.rel_intensity, g.family))
        if fi > 0:
            ce = _escape_energy(ci)
            parts.append(_Part(f"{g.element} {g.name} {label} escape".strip(), ce, ai * fi,
                               float(np.hypot(physics.fwhm_keV(ce, fwhm6), xi)), "escape", g.iupac,
                               g.rel_intensity * fi, g.family))
    return _Component(name, kind, template, parts, element)


def _sum_component(
    e: np.ndarray, p1: tuple[str, float], p2: tuple[str, float], fwhm6: float
) -> _Component | None:
    keV = p1[1] + p2[1]
    if keV >= e[-1]:
        return None
    fw = float(physics.fwhm_keV(keV, fwhm6))
    template = physics.gaussian_peaks(e, [keV], [1.0], fw)
    name = f"{p1[0]} + {p2[0]} sum"
    return _Component(name, "sum", template, [_Part(name, keV, 1.0, fw, "sum")])


def _max_above(m: np.ndarray, n: int) -> np.ndarray:
    """``out[i] = max(m[i : i + n + 1])``: the largest value within ``n`` channels above."""
    half = max(int(n) // 2, 1)
    padded = np.concatenate([m, np.zeros(2 * half)])
    return ndimage.maximum_filter1d(padded, 2 * half + 1, mode="constant")[half: half + m.size]


def _nnls_gram(G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Non-negative least squares from the normal equations: ``min x'Gx - 2h'x, x >= 0``."""
    n = h.size
    if n == 0:
        return np.zeros(0)
    d = np.sqrt(np.maximum(np.diag(G), 1e-300))
    Gs = G / d[:, None] / d[None, :] + np.eye(n) * 1e-10
    try:
        L = linalg.cholesky(Gs, lower=True)
    except linalg.LinAlgError:
        L = linalg.cholesky(Gs + np.eye(n) * 1e-6, lower=True)
    rhs = linalg.solve_triangular(L, h / d, lower=True)
    xs, _ = optimize.nnls(L.T, rhs, maxiter=50 * n)
    return xs / d


class _Fitter:
    """Weighted non-negative least squares of templates to a baseline-subtracted spectrum.

    The variance of channel ``i`` is ``s**2 max(y_i, 1)`` (Poisson counts; ``s >= 1`` the
    measured noise scale) plus, times ``systematic``, the model's own uncertainty: each
    fitted column's :data:`SYSTEMATIC` share, :data:`WING_ERROR` of the largest model value
    within 1.5 FWHM and :data:`DYNAMIC_RANGE` of the largest within 1 keV above.
    """

    def __init__(self, net: np.ndarray, gross_smooth: np.ndarray, sel: np.ndarray, scale2: float,
                 systematic: float, wing_channels: int, far_channels: int) -> None:
        self.sel = sel
        self.r = net[sel]
        self.v0 = scale2 * np.maximum(gross_smooth[sel], 1.0)
        self.eps_scale = float(systematic)
        self.wing = max(int(wing_channels), 1)
        self.far = max(int(far_channels), 1)
        self.comps: list[_Component] = []
        self._rows: list[np.ndarray] = []
        self._unc: list[np.ndarray] = []
        self._A: sparse.csr_matrix | None = None
        self.w = 1.0 / self.v0
        self._dirty = True

    def add(self, comp: _Component) -> int:
        self.comps.append(comp)
        self._rows.append(comp.template[self.sel])
        self._unc.append(np.abs(comp.unc[self.sel]))
        self._dirty = True
        return len(self.comps) - 1

    def pop(self) -> None:
        """Remove the last column."""
        self.comps.pop()
        self._rows.pop()
        self._unc.pop()
        self._dirty = True

    @property
    def A(self) -> sparse.csr_matrix:
        if self._A is None or self._A.shape[0] != len(self._rows):
            dense = np.array(self._rows).reshape(len(self._rows), self.r.size)
            tiny = 1e-12 * np.maximum(np.abs(dense).max(axis=1, keepdims=True), 1e-300)
            dense = np.where(np.abs(dense) > tiny, dense, 0.0)
            self._A = sparse.csr_matrix(dense)
        return self._A

    def set_weights(self, cols: Sequence[int] = (), x: np.ndarray | None = None) -> None:
        """Weights from the Poisson variance and the systematic error of a model."""
        var = self.v0.copy()
        if x is not None and len(cols):
            m = np.maximum(self.model(cols, x), 0.0)
            for j, xj in zip(cols, x):
                if xj > 0:
                    var += (self.eps_scale * xj * self._unc[j]) ** 2
            var += (WING_ERROR * self.eps_scale * ndimage.maximum_filter1d(m, 2 * self.wing + 1)) ** 2
            var += (DYNAMIC_RANGE * self.eps_scale * _max_above(m, self.far)) ** 2
        self.w = 1.0 / var
        self._update()

    def _update(self) -> None:
        A = self.A
        Aw = A.multiply(self.w[None, :]).tocsr()
        self.G = np.asarray((Aw @ A.T).toarray())
        self.h = np.asarray(Aw @ self.r).ravel()
        self.rwr = float(np.sum(self.r * self.r * self.w))
        self._dirty = False

    def ensure(self) -> None:
        if self._dirty:
            self._update()

    def solve(
        self, idx: Sequence[int], cons: Sequence[tuple[int, int, float]] = ()
    ) -> tuple[np.ndarray, float]:
        """Non-negative fit of the columns ``idx`` with constraints ``x_i <= c x_j``.

        A violated constraint is made an equality (column ``i`` folded into column ``j``)
        and the fit repeated: for a convex quadratic, a bound the free optimum crosses is
        active at the constrained optimum (exact for one constraint, a good approximation
        for the few here).
        """
        x, chi2, _ = self._solve(idx, cons)
        return x, chi2

    def _solve(
        self, idx: Sequence[int], cons: Sequence[tuple[int, int, float]]
    ) -> tuple[np.ndarray, float, np.ndarray]:
        self.ensure()
        idx = np.asarray(list(idx), dtype=int)
        n = idx.size
        if n == 0:
            return np.zeros(0), self.rwr, np.zeros((0, 0))
        G = self.G[np.ix_(idx, idx)]
        h = self.h[idx]
        pos = {int(c): k for k, c in enumerate(idx)}
        local = [(pos[i], pos[j], c) for i, j, c in cons if i in pos and j in pos]
        T = np.eye(n)
        keep = np.ones(n, dtype=bool)
        if local:
            ci = np.array([t[0] for t in local])
            cj = np.array([t[1] for t in local])
            cc = np.array([t[2] for t in local], dtype=float)
        for _ in range(len(local) + 1):
            Tk = T[:, keep]
            x = Tk @ _nnls_gram(Tk.T @ G @ Tk, Tk.T @ h)
            if not local:
                break
            excess = x[ci] - cc * x[cj]
            bad = np.flatnonzero(keep[ci] & keep[cj] & (excess > 1e-9 * np.abs(x[ci]) + 1e-12))
            if bad.size == 0:
                break
            folded = np.zeros(n, dtype=bool)
            for b in bad[np.argsort(-excess[bad])]:
                i, j, c = ci[b], cj[b], cc[b]
                if folded[i] or folded[j] or not keep[i] or not keep[j]:
                    continue
                # fold column i into j: x_i = c x_j (and whatever was folded into i follows)
                T[:, j] += c * T[:, i]
                T[:, i] = 0.0
                keep[i] = False
                folded[i] = folded[j] = True
        chi2 = self.rwr - 2.0 * float(x @ h) + float(x @ G @ x)
        return x, max(chi2, 0.0), T[:, keep]

    def linear_variance(
        self, idx: Sequence[int], cons: Sequence[tuple[int, int, float]], x: np.ndarray, g: np.ndarray
    ) -> float:
        """Variance of ``g . x`` (e.g. an element's total counts) at the fitted solution.

        The free parameters are the positive ones of the reduced (constrained) problem.
        """
        _, _, Tk = self._solve(idx, cons)
        idx = np.asarray(list(idx), dtype=int)
        if Tk.size == 0:
            return 0.0
        G = self.G[np.ix_(idx, idx)]
        xr = np.linalg.lstsq(Tk, x, rcond=None)[0]
        act = xr > 0
        if not np.any(act):
            return 0.0
        Ta = Tk[:, act]
        cov = linalg.pinvh(Ta.T @ G @ Ta)
        ga = Ta.T @ g
        var = float(ga @ cov @ ga)
        if var <= 0:  # g does not touch the free parameters: one-at-a-time error
            gg = float(g @ G @ g)
            var = float(g @ g) ** 2 / gg if gg > 0 else 0.0
        return var

    def model(self, idx: Sequence[int], x: np.ndarray) -> np.ndarray:
        """Model over the fitted channels."""
        idx = list(idx)
        if not idx:
            return np.zeros(self.r.size)
        return np.asarray(self.A[idx].T @ x).ravel()


# =========================================================================== results
@dataclass
class LineEvidence:
    """How one line of an element fared in one spectrum.

    Attributes
    ----------
    element : str
        Chemical symbol.
    line : str
        Siegbahn name of the (merged) peak's strongest line (``'Ka1'``).
    iupac : str
        Its IUPAC name.
    keV : float
        Expected energy (keV).
    observed_keV : float or None
        Energy (keV) of the observed peak or residual that matches it; None if not seen.
    spectrum : int
        Index of the spectrum (hotmax spectrum; 0 for a single spectrum).
    expected_counts : float
        Fitted area (counts) of the line.
    visible : bool
        Expected to be seen: its fitted area is at least ``VISIBLE_Z`` standard errors of a
        local fit and its height rises above the noise envelope.
    seen : bool
        Actually observed: a local excess of at least ``LINE_Z_MIN`` sigma at the expected
        energy, of at least ``LINE_RATIO_MIN`` of the fitted area, above the envelope.
    local_z : float
        Local significance (sigma) of the line in the residual of the full model with the
        line's own fitted contribution added back.
    """

    element: str
    line: str
    iupac: str
    keV: float
    observed_keV: float | None
    spectrum: int
    expected_counts: float
    visible: bool
    seen: bool
    local_z: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "line": self.line,
            "iupac": self.iupac,
            "keV": round(float(self.keV), 4),
            "observed_keV": None if self.observed_keV is None else round(float(self.observed_keV), 4),
            "spectrum": int(self.spectrum),
            "expected_counts": float(self.expected_counts),
            "visible": bool(self.visible),
            "seen": bool(self.seen),
            "local_z": round(float(self.local_z), 2),
        }


@dataclass
class ElementResult:
    """Verdict and evidence for one element.

    Attributes
    ----------
    element : str
        Chemical symbol.
    status : str
        ``'present'``, ``'possible'`` or ``'absent'``.
    confidence : float
        In [0, 1]: ``line_fraction * z**2 / (z**2 + Z_HALF**2)``.
    counts : float
        Fitted total area of its lines (counts).
    relative : float
        ``counts`` over those of the strongest element of the spectrum.
    z : float
        Fitted amplitude over its standard error.
    delta_chi2 : float
        Chi-square increase when the element is removed from the final model.
    line_fraction : float
        Intensity-weighted share of its expected-visible lines actually seen.
    lines : list of LineEvidence
        Its visible or seen lines.
    spectra : list of int
        Spectra where it has this status (for a datastack: hotmax spectra indices).
    """

    element: str
    status: str
    confidence: float
    counts: float
    relative: float
    z: float
    delta_chi2: float
    line_fraction: float
    lines: list[LineEvidence] = field(default_factory=list)
    spectra: list[int] = field(default_factory=list)

    @property
    def trace(self) -> bool:
        """Fitted counts below :data:`TRACE_FRACTION` of the strongest element."""
        return self.relative < TRACE_FRACTION

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the ``elements`` entries of :meth:`Identification.to_dict`)."""
        return {
            "element": self.element,
            "status": self.status,
            "confidence": round(float(self.confidence), 4),
            "counts": float(self.counts),
            "relative": float(self.relative),
            "trace": bool(self.trace),
            "z": round(float(self.z), 2),
            "delta_chi2": round(float(self.delta_chi2), 2),
            "line_fraction": round(float(self.line_fraction), 3),
            "spectra": [int(s) for s in self.spectra],
            "lines": [ln.to_dict() for ln in self.lines],
        }


@dataclass
class ObservedPeak:
    """An observed peak of a spectrum and what explains it.

    Attributes
    ----------
    keV : float
        Energy (keV).
    channel : int
        Channel of the maximum.
    height : float
        Net height (counts above the baseline).
    label : str
        Best explanation (``'Fe Ka1'``, ``'Rh Ka1 Compton'``...), ``'?'`` if unexplained.
    kind : str
        ``'element'``, an instrument kind, or ``'unexplained'``.
    explained : float
        Share of the net height the final model accounts for.
    """

    keV: float
    channel: int
    height: float
    label: str
    kind: str
    explained: float


@dataclass
class SpectrumIdentification:
    """Identification of one spectrum, with the fitted model for plots.

    Attributes
    ----------
    index : int
        Spectrum index (hotmax spectrum number, 0 for a single spectrum).
    elements : dict of str to ElementResult
        Every candidate element.
    instrument : list of dict
        Instrument peaks seen: ``{'name', 'keV', 'kind', 'counts'}``.
    peaks : list of ObservedPeak
        Observed peaks with their labels.
    unexplained_keV : list of float
        Observed peaks the final model does not explain.
    energies, counts, baseline, envelope, model : numpy.ndarray
        ``(C,)`` axis (keV), spectrum, baseline, noise envelope and fitted model (baseline
        included).
    fwhm_at_6keV : float
        Detector resolution used (keV at 5.9 keV).
    theta_deg : float
        Scattering angle used (degrees).
    chi2_reduced : float
        Reduced chi-square of the final model over the fitted range.
    """

    index: int
    elements: dict[str, ElementResult]
    instrument: list[dict[str, Any]]
    peaks: list[ObservedPeak]
    unexplained_keV: list[float]
    energies: np.ndarray
    counts: np.ndarray
    baseline: np.ndarray
    envelope: np.ndarray
    model: np.ndarray
    fwhm_at_6keV: float
    theta_deg: float
    chi2_reduced: float

    def present(self) -> list[str]:
        """Present elements, strongest confidence first."""
        els = [r for r in self.elements.values() if r.status == "present"]
        return [r.element for r in sorted(els, key=lambda r: -r.confidence)]


@dataclass
class Identification:
    """Elements and instrument peaks of a spectrum or of all hotmax spectra of a scan.

    Attributes
    ----------
    elements : list of ElementResult
        Present first, then possible, then absent candidates; by confidence.
    instrument : list of dict
        ``{'name', 'keV', 'kind', 'spectra'}`` instrument peaks seen.
    unexplained_keV : list of float
        Observed peaks no element or instrument peak explains (keV).
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    spectra : list of SpectrumIdentification
        Per-spectrum results (the fitted models, for plots).
    source : str
        What was identified (path or description).
    """

    elements: list[ElementResult]
    instrument: list[dict[str, Any]]
    unexplained_keV: list[float]
    anode: str
    tube_kv: float
    spectra: list[SpectrumIdentification] = field(default_factory=list)
    source: str = ""

    def __getitem__(self, element: str) -> ElementResult:
        sym = physics.normalize_element(element)
        for r in self.elements:
            if r.element == sym:
                return r
        raise KeyError(element)

    def status(self, element: str) -> str:
        """``'present'``, ``'possible'`` or ``'absent'`` (also for elements never considered)."""
        try:
            return self[element].status
        except KeyError:
            return "absent"

    @property
    def present(self) -> list[str]:
        """Present elements, by confidence."""
        return [r.element for r in self.elements if r.status == "present"]

    @property
    def possible(self) -> list[str]:
        """Possible elements, by confidence."""
        return [r.element for r in self.elements if r.status == "possible"]

    def to_dict(self, *, absent: bool = True) -> dict[str, Any]:
        """JSON-safe result (the ``identification`` layer's attrs).

        Parameters
        ----------
        absent : bool
            Include the candidates found absent.

        Returns
        -------
        dict
            ``{'elements': [...], 'instrument': [...], 'unexplained_keV': [...],
            'anode', 'tube_kv', 'fwhm_at_6keV', 'theta_deg', 'n_spectra', 'trace_fraction',
            'source', 'spectrum_peaks'}``; ``spectrum_peaks[n]`` lists the observed peaks of
            spectrum ``n`` as ``{'keV', 'label', 'kind'}`` (what explains each).
        """
        els = [r.to_dict() for r in self.elements if absent or r.status != "absent"]
        fw = [s.fwhm_at_6keV for s in self.spectra]
        th = [s.theta_deg for s in self.spectra]
        return {
            "elements": els,
            "instrument": [dict(p) for p in self.instrument],
            "unexplained_keV": [round(float(v), 3) for v in self.unexplained_keV],
            "anode": self.anode,
            "tube_kv": float(self.tube_kv),
            "fwhm_at_6keV": float(np.median(fw)) if fw else None,
            "theta_deg": float(np.median(th)) if th else None,
            "n_spectra": len(self.spectra),
            "trace_fraction": TRACE_FRACTION,
            "source": self.source,
            "spectrum_peaks": [
                [{"keV": round(float(p.keV), 4), "label": p.label, "kind": p.kind} for p in s.peaks]
                for s in self.spectra
            ],
        }

    def table(self, *, absent: bool = False) -> str:
        """Human-readable table: element, status, confidence, relative counts, lines."""
        rows = [("element", "status", "confidence", "relative", "lines (keV, spectrum)")]
        for r in self.elements:
            if r.status == "absent" and not absent:
                continue
            seen = [ln for ln in r.lines if ln.seen]
            shown: dict[str, LineEvidence] = {}
            for ln in seen:
                shown.setdefault(ln.line, ln)
            items = sorted(shown.values(), key=lambda ln: ln.keV)
            lines = ", ".join(f"{ln.line} {ln.keV:.2f}" for ln in items[:8])
            if len(items) > 8:
                lines += f" +{len(items) - 8}"
            specs = sorted({ln.spectrum for ln in seen})
            if len(self.spectra) > 1 and specs:
                more = "" if len(specs) <= 6 else f" +{len(specs) - 6}"
                lines += f"  [spectra {', '.join(map(str, specs[:6]))}{more}]"
            rel = f"{r.relative:.3g}" + (" trace" if r.status == "present" and r.trace else "")
            rows.append((r.element, r.status, f"{r.confidence:.2f}", rel, lines))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        out = []
        for row in rows:
            out.append("  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4])
        if self.instrument:
            inst = ", ".join(f"{p['name']} {p['keV']:.2f}" for p in self.instrument[:12])
            more = "" if len(self.instrument) <= 12 else f" (+{len(self.instrument) - 12})"
            out.append(f"instrument: {inst}{more}")
        if self.unexplained_keV:
            out.append("unexplained peaks (keV): " + ", ".join(f"{v:.2f}" for v in self.unexplained_keV))
        return "\n".join(out)


# =========================================================================== one spectrum
def estimate_fwhm6(
    counts: Any, energies: Any, base: Any | None = None, *, anode: str = "Rh", tube_kv: float = 40.0
) -> float | None:
    """Detector FWHM at 5.9 keV (keV) from the widths of the strongest peaks.

    Gaussian fits (:func:`maxrf.peaks.fit_peaks`) of up to 12 significant peaks -- the zero
    peak, and peaks above 1 keV outside the anode's broad Compton region -- give
    ``FWHM(E)``; the Fano model ``FWHM**2 = noise**2 + slope * E``
    (:func:`maxrf.physics.fwhm_keV`) turns each into an estimate at 5.9 keV; the
    significance-weighted median of the plausible ones (0.11..0.40 keV) is returned.

    Parameters
    ----------
    counts, energies : array_like
        ``(C,)`` spectrum and channel energies (keV).
    base : array_like, optional
        Baseline (counts).
    anode : str
        Tube anode (its Compton peaks are broad: skipped).
    tube_kv : float
        Tube voltage (kV).

    Returns
    -------
    float or None
        FWHM (keV) at 5.9 keV, between 0.121 and 0.40; None when no peak can be measured.
    """
    y = np.asarray(counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    gain = np.gradient(e)
    fw_ch = _peaks.estimate_fwhm_channels(y)
    b = _peaks.baseline(y, fwhm_channels=fw_ch) if base is None else np.asarray(base, float)
    idx, props = _peaks.find_spectrum_peaks(y, base=b, fwhm_channels=fw_ch, n_sigma=10.0)
    if idx.size == 0:
        return None
    k_lines = [ln.energy_keV for ln in physics.anode_lines(anode, tube_kv) if ln.family == "K"]
    comp_lo = float(physics.compton_shift(min(k_lines), 180.0)) - 0.3 if k_lines else math.inf
    comp_hi = max(k_lines) - 0.15 if k_lines else math.inf
    ek = e[idx]
    ok = ((ek >= 1.0) | (np.abs(ek) <= 0.05)) & ~((ek >= comp_lo) & (ek <= comp_hi))
    idx, sig = idx[ok], props["significance"][ok]
    if idx.size == 0:
        return None
    order = np.argsort(sig)[::-1][:12]
    idx, sig = idx[order], sig[order]
    fits = _peaks.fit_peaks(y, idx, fwhm_channels=fw_ch, base=b)
    est, wts = [], []
    for f, s in zip(fits, sig):
        if not f.ok:
            continue
        en = max(float(np.interp(f.center, np.arange(e.size), e)), 0.0)
        fw = f.fwhm * float(np.interp(f.center, np.arange(e.size), gain))
        n2 = fw * fw - _SLOPE * en
        if n2 <= 0:
            continue
        f6 = math.sqrt(n2 + _SLOPE * physics.FWHM_REFERENCE_KEV)
        if 0.11 <= f6 <= 0.40:
            est.append(f6)
            wts.append(float(s))
    if not est:
        return None
    order = np.argsort(est)
    cw = np.cumsum(np.asarray(wts)[order])
    f6 = float(np.asarray(est)[order][np.searchsorted(cw, 0.5 * cw[-1])])
    return float(min(max(f6, 0.121), 0.40))


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
            fwhm6 = estimate_fwhm6(y, e, self.base, anode=anode, tube_kv=tube_kv) or 0.145
        self.fwhm6 = float(fwhm6)
        if theta is None:
            theta = estimate_theta(y, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=self.fwhm6)
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


def _instrument_components(ctx: _SpectrumContext, air: bool = True) -> list[_Component]:
    e, f6 = ctx.e, ctx.fwhm6
    groups = _anode_groups(ctx.anode, ctx.tube_kv, f6)
    kg = [g for g in groups if g.family == "K"]
    lg = [g for g in groups if g.family != "K"]
    comps = [
        _line_component("rayleigh Ka", "rayleigh", e, [g for g in kg if g.name.startswith("Ka")], f6,
                        label="Rayleigh", element=ctx.anode),
        _line_component("rayleigh Kb", "rayleigh", e, [g for g in kg if not g.name.startswith("Ka")], f6,
                        label="Rayleigh", element=ctx.anode),
        _line_component("rayleigh K tail", "tail", e, kg, f6, label="Rayleigh", element=ctx.anode,
                        tail=True),
        _line_component("compton K", "compton", e, kg, f6, label="Compton", shift_theta=ctx.theta,
                        broadening=0.0105, element=ctx.anode),
        _line_component("compton K broad", "compton", e, kg, f6, label="Compton",
                        shift_theta=ctx.theta, broadening=0.025, element=ctx.anode),
    ]
    # each anode L / M line on its own: their ratios change with the sample's absorption
    # edges between 2 and 4 keV (S, Cl, Ar, K...) and with the air path
    for g in lg:
        comps.append(_line_component(f"rayleigh {g.name}", "rayleigh", e, [g], f6, label="Rayleigh",
                                     element=ctx.anode))
    if air:
        ar = _pattern_peaks("Ar", physics.element_lines("Ar", ctx.tube_kv, min_rel=0.01), f6)
        comps.append(_line_component("air Ar", "air", e, ar, f6, label="(air)", element="Ar"))
    return [c for c in comps if c is not None and np.any(c.template[ctx.sel] != 0)]


@dataclass
class _Eval:
    element: str
    x: float
    z: float
    dchi2: float
    fraction: float
    main_seen: bool
    n_visible: int
    counts: float
    lines: list[LineEvidence]

    @property
    def n_seen(self) -> int:
        """Seen lines; only those above SOFT_KEV when the element has visible lines there (the
        soft region is crowded with anode L lines, argon and light-element K lines)."""
        hard = [ln for ln in self.lines if ln.keV >= SOFT_KEV]
        pool = hard if any(ln.visible for ln in hard) else self.lines
        return sum(1 for ln in pool if ln.seen)

    @property
    def passes_present(self) -> bool:
        return (
            self.dchi2 >= DCHI2_PRESENT
            and self.z >= Z_PRESENT
            and self.n_visible > 0
            and self.main_seen
            and self.fraction >= LINE_FRACTION_PRESENT
            and (self.element in COMMON_ELEMENTS or self.n_seen >= 2)
            # one weak line alone is ambiguous (As K-alpha or Pb L-alpha?): a line seen
            # where it was expected clearly, or two lines seen
            and (
                any(ln.seen and ln.visible for ln in self.lines)
                or sum(1 for ln in self.lines if ln.seen) >= 2
            )
        )

    @property
    def passes_possible(self) -> bool:
        return self.dchi2 >= DCHI2_POSSIBLE and self.z >= Z_POSSIBLE and self.main_seen

    @property
    def confidence(self) -> float:
        seen = any(ln.seen for ln in self.lines)
        frac = self.fraction if self.n_visible else 0.5 * float(seen)
        z = max(self.z, 0.0)
        return float(frac * z * z / (z * z + Z_HALF * Z_HALF))


def _subshell(part: _Part) -> str:
    """Group of a pattern peak: ``'Ka'``, ``'Kb'``, ``'L1'``, ``'L2'``, ``'L3'`` or ``'M'``."""
    if part.family == "K":
        return "Kb" if part.label.startswith("Kb") else "Ka"
    if part.family == "L":
        sub = part.iupac.split("-")[0].split(",")[0].strip()
        return sub if sub in ("L1", "L2", "L3") else "L3"
    return part.family


class _ElementModel:
    """The columns of one element in the fit and the bounds between them.

    One column per line group -- K, the L1, L2 and L3 sub-shells, M -- holding the group's
    share of the unit template (amplitude ratios of 1 reproduce
    :func:`maxrf.physics.element_spectrum`), and per family (K, L, M) one column for its Si
    escape peaks and one for its low-energy peak tail. Linear constraints ``x_i <= c x_j``
    keep the groups near the model: L sub-shells within a factor :data:`SUBSHELL_SLACK` of
    each other, families within their efficiency bounds (:func:`_family_bounds`), escape
    peaks at most ``1 + FAMILY_SLACK`` times nominal, tails at most :data:`TAIL_MAX` of
    their family.
    """

    def __init__(self, el: str, atoms: list[_Atom], fit: _Fitter, ctx: _SpectrumContext) -> None:
        self.element = el
        self.atoms = atoms
        self.cols: list[int] = []
        self.roles: list[tuple[str, str]] = []
        self.cons: list[tuple[int, int, float]] = []
        groups = [g for g in ("Ka", "Kb", "L3", "L2", "L1", "M")
                  if any(_subshell(a.part) == g and a.part.kind == "line" for a in atoms)]
        grp_col: dict[str, int] = {}
        grp_sum: dict[str, float] = {}
        for g in groups:
            w = [1.0 if (_subshell(a.part) == g and a.part.kind == "line") else 0.0 for a in atoms]
            comp = _combine(f"{el} {g}", "element", atoms, w, el)
            s = float(comp.template[ctx.sel].sum())
            if not s > 1e-6:
                continue
            grp_col[g] = fit.add(comp)
            grp_sum[g] = s
            self.cols.append(grp_col[g])
            self.roles.append(("group", g))
        fam_of = {g: g[0] for g in grp_col}
        bounds = {f: _family_bounds(atoms, f, ctx.tube_kv) for f in set(fam_of.values())}
        for f in sorted(set(fam_of.values())):
            members = [g for g in grp_col if fam_of[g] == f]
            main = max(members, key=lambda g: grp_sum[g])
            j = grp_col[main]
            w_line = [1.0 if (a.part.family == f and a.part.kind == "line") else 0.0 for a in atoms]
            w_esc = [1.0 if (a.part.family == f and a.part.kind == "escape") else 0.0 for a in atoms]
            if any(w_esc):
                esc = _combine(f"{el} {f} escape", "element", atoms, w_esc, el)
                if np.any(esc.template[ctx.sel] > 0):
                    k = fit.add(esc)
                    self.cols.append(k)
                    self.roles.append(("escape", f))
                    self.cons.append((k, j, (1.0 + FAMILY_SLACK) * sum(grp_sum[g] for g in members)
                                      / grp_sum[main]))
            tail = _combine(f"{el} {f} tail", "tail", atoms, w_line, el, tail=True)
            if np.any(tail.template[ctx.sel] > 0):
                k = fit.add(tail)
                self.cols.append(k)
                self.roles.append(("tail", f))
                self.cons.append((k, j, TAIL_MAX * sum(grp_sum[g] for g in members) / grp_sum[main]))
        for g, jg in grp_col.items():
            for h, jh in grp_col.items():
                if g == h:
                    continue
                if fam_of[g] == "K":  # K-beta / K-alpha
                    self.cons.append((jg, jh, _kbeta_bounds(el, g == "Kb")))
                elif fam_of[g] == fam_of[h]:  # L sub-shells
                    self.cons.append((jg, jh, SUBSHELL_SLACK))
                elif bounds[fam_of[h]][0] > 0:
                    self.cons.append((jg, jh, bounds[fam_of[g]][1] / bounds[fam_of[h]][0]))
        self.family_cols = list(grp_col.values())
        self.sums = {c: float(fit.comps[c].template[ctx.sel].sum()) for c in self.cols}

    @property
    def ok(self) -> bool:
        return bool(self.family_cols)


def _kbeta_bounds(el: str, kbeta_over_kalpha: bool) -> float:
    """Bound ``c`` of ``x_Kb <= c x_Ka`` (True) or ``x_Ka <= c x_Kb`` (False).

    K-beta / K-alpha is a ratio of transition probabilities, good to a few per cent -- but
    xraydb's free-atom values overestimate K-beta of light elements (Z <= 17: Si, P, S, Cl), whose M
    electrons are valence electrons: there it may fall to :data:`LIGHT_KBETA_MIN` of the model.
    """
    hi = 1.0 + FAMILY_SLACK
    lo = LIGHT_KBETA_MIN if xraydb.atomic_number(el) <= 17 else 1.0 / hi
    return hi if kbeta_over_kalpha else 1.0 / lo


def _family_bounds(atoms: Sequence[_Atom], fam: str, tube_kv: float) -> tuple[float, float]:
    """Bounds ``(lo, hi)`` of a line family's efficiency relative to the model.

    The model leaves out absorption in air, windows and the sample (strong below
    :data:`SOFT_KEV`), the detector's efficiency (falling above :data:`HARD_KEV`) and is
    crude near an absorption edge (over-voltage below :data:`MIN_OVERVOLTAGE`): such a family
    may be anything from absent (``lo = 0``) to ``1 + FAMILY_SLACK`` times the model; any
    other family is within a factor ``1 + FAMILY_SLACK`` of it.
    """
    lines = [a.part for a in atoms if a.part.family == fam and a.part.kind == "line"]
    if not lines:
        return 0.0, 1.0 + FAMILY_SLACK
    main = max(lines, key=lambda p: p.frac)
    edge = max((ln.edge_keV for a in atoms if a.part.family == fam for ln in a.lines), default=0.0)
    hi = 1.0 + FAMILY_SLACK
    soft_or_hard = main.keV < SOFT_KEV or main.keV > HARD_KEV
    near_edge = edge > 0 and tube_kv / edge < MIN_OVERVOLTAGE
    lo = 0.0 if (soft_or_hard or near_edge) else 1.0 / hi
    return lo, hi


class _Selector:
    """Forward / backward selection of elements for one spectrum."""

    def __init__(
        self, ctx: _SpectrumContext, candidates: Sequence[str], cache: dict[str, Any] | None = None
    ) -> None:
        self.ctx = ctx
        wing = int(round(1.5 * ctx.fw_ch))
        far = int(round(1.0 / float(np.median(ctx.gain))))
        self.fit = _Fitter(ctx.net, ctx.gross_smooth, ctx.sel, ctx.scale**2, ctx.eps, wing, far)
        self.base_idx: list[int] = [self.fit.add(c) for c in _instrument_components(ctx)]
        # the Rayleigh peak's tail is bounded by the peak, as an element's
        names = {self.fit.comps[j].name: j for j in self.base_idx}
        self.base_cons: list[tuple[int, int, float]] = []
        if "rayleigh K tail" in names and "rayleigh Ka" in names:
            self.base_cons.append((names["rayleigh K tail"], names["rayleigh Ka"], TAIL_MAX))
        self.models: dict[str, _ElementModel] = {}
        cache = {} if cache is None else cache  # atoms of a shared axis / resolution / voltage
        for el in candidates:
            if el not in cache:
                cache[el] = _element_atoms(el, ctx.e, ctx.tube_kv, ctx.fwhm6)
            atoms = cache[el]
            if not atoms:
                continue
            model = _ElementModel(el, atoms, self.fit, ctx)
            if model.ok:
                self.models[el] = model
        self.accepted: list[str] = []
        self.fit.set_weights()

    # ----------------------------------------------------------------- helpers
    def cols(self, elements: Sequence[str]) -> tuple[list[int], list[tuple[int, int, float]]]:
        cols = list(self.base_idx)
        cons: list[tuple[int, int, float]] = list(self.base_cons)
        for el in elements:
            cols += self.models[el].cols
            cons += self.models[el].cons
        return cols, cons

    def solve(self, elements: Sequence[str]) -> tuple[list[int], np.ndarray, float]:
        cols, cons = self.cols(elements)
        x, chi2 = self.fit.solve(cols, cons)
        return cols, x, chi2

    def reweight(self) -> None:
        cols, x, _ = self.solve(self.accepted)
        self.fit.set_weights(cols, x)

    def full_model(self, cols: Sequence[int], x: np.ndarray) -> np.ndarray:
        """Model (net counts) over the whole axis."""
        out = np.zeros(self.ctx.e.size)
        for k, j in enumerate(cols):
            if x[k] != 0:
                out += x[k] * self.fit.comps[j].template
        return out

    def evaluate(self, el: str, elements: Sequence[str]) -> _Eval:
        """Tests of ``el`` in the model instrument + ``elements`` + ``el``."""
        others = [o for o in elements if o != el]
        model = self.models[el]
        cols0, cons0 = self.cols(others)
        _, chi0 = self.fit.solve(cols0, cons0)
        cols1, cons1 = cols0 + model.cols, cons0 + model.cons
        x1, chi1 = self.fit.solve(cols1, cons1)
        k0 = len(cols0)
        own_x = x1[k0:]
        g = np.zeros(len(cols1))
        for k, c in enumerate(model.cols):
            if model.roles[k][0] != "tail":
                g[k0 + k] = model.sums[c]
        counts = float(g @ x1)
        var = self.fit.linear_variance(cols1, cons1, x1, g)
        z = counts / math.sqrt(var) if var > 0 and counts > 0 else 0.0
        coef_atom: dict[int, float] = {}
        for k, j in enumerate(model.cols):
            for i, w in (self.fit.comps[j].atom_w or {}).items():
                coef_atom[i] = coef_atom.get(i, 0.0) + float(own_x[k]) * w
        resid = self.ctx.net - self.full_model(cols1, x1)
        lines, frac, main_seen, nvis = self._line_evidence(el, coef_atom, resid)
        amp = float(max(own_x[[model.cols.index(c) for c in model.family_cols]], default=0.0))
        return _Eval(el, amp, float(z), float(chi0 - chi1), frac, main_seen, nvis, max(counts, 0.0), lines)

    def _line_evidence(
        self, el: str, coef_atom: Mapping[int, float], resid: np.ndarray
    ) -> tuple[list[LineEvidence], float, bool, int]:
        """Visible / seen lines of ``el``; ``resid`` is the residual of the full model, to
        which each line's own fitted contribution is added back before it is looked for."""
        ctx = self.ctx
        noise_env = ctx.env - ctx.base
        out: list[LineEvidence] = []
        vis_w = seen_w = 0.0
        main_rel, main_seen, nvis = 0.0, False, 0
        for k, atom in enumerate(self.models[el].atoms):
            p = atom.part
            if p.kind != "line" or not (ctx.e[0] <= p.keV <= ctx.e[-1]) or p.keV < MIN_FIT_KEV:
                continue
            i = int(np.argmin(np.abs(ctx.e - p.keV)))
            if not ctx.sel[i] or ctx.scatter_lo <= p.keV <= ctx.scatter_hi:
                continue  # off the fitted range, or under the broad scatter peaks: unverifiable
            c = max(coef_atom.get(k, 0.0), 0.0)
            area = c * p.frac
            height = area * ctx.gain[i] / (p.fwhm / physics.FWHM_PER_SIGMA * _SQRT2PI)
            a_hat, se, shift, shift_se = self._local_peak(resid + c * atom.template, p.keV, p.fwhm)
            z_loc = a_hat / se
            # expected significance of the line where it stands (the local fit's error holds
            # the counting noise and the model's systematic error near strong peaks)
            exp_z = area / se
            visible = bool(exp_z >= VISIBLE_Z and height > noise_env[i])
            seen = bool(
                z_loc >= LINE_Z_MIN
                and a_hat >= LINE_RATIO_MIN * area
                and ctx.ys[i] > ctx.env[i]
                and abs(shift) <= SHIFT_FWHM * p.fwhm + 2.0 * shift_se
            )
            if not (visible or seen or p.rel >= 0.2):
                continue
            observed = None
            if seen:
                tol = 0.5 * p.fwhm
                if ctx.peak_keV.size:
                    near_peak = int(np.argmin(np.abs(ctx.peak_keV - p.keV)))
                    if abs(ctx.peak_keV[near_peak] - p.keV) <= tol:
                        observed = float(ctx.peak_keV[near_peak])
                if observed is None:
                    near = np.abs(ctx.e - p.keV) <= tol
                    pos = np.maximum(resid[near] + c * atom.template[near], 0.0)
                    observed = float(np.sum(pos * ctx.e[near]) / pos.sum()) if pos.sum() > 0 else p.keV
            # the main line: the model's strongest of those rising above the envelope
            if height > noise_env[i] and p.rel > main_rel:
                main_rel, main_seen = p.rel, seen
            if visible or seen:
                # weight: the line's expected significance (capped): a strong line that is
                # missing speaks against the element whatever its relative intensity; a
                # weak line that is seen all the same counts for what it was expected to be
                wgt = min(max(exp_z, 1.0), SIGNIFICANCE_CAP)
                nvis += 1
                vis_w += wgt
                if seen:
                    seen_w += wgt
            out.append(
                LineEvidence(el, p.label, p.iupac, p.keV, observed, ctx.index, area, visible, seen, z_loc)
            )
        frac = seen_w / vis_w if vis_w > 0 else 0.0
        return out, float(frac), bool(main_seen), nvis

    def _local_peak(
        self, resid: np.ndarray, keV: float, fwhm: float
    ) -> tuple[float, float, float, float]:
        """A Gaussian line at ``keV`` in a residual, over a local straight background (+-1.5
        FWHM; a shelf or a neighbour's wing is no peak), with a small position shift.

        Returns area (counts), its standard error, the shift (keV) and its standard error.
        """
        ctx = self.ctx
        win = np.abs(ctx.e - keV) <= 1.5 * fwhm
        if np.count_nonzero(win) < 6:
            return 0.0, math.inf, 0.0, math.inf
        ew = ctx.e[win]
        s = fwhm / physics.FWHM_PER_SIGMA
        prof = _gauss_profile(ew, keV, fwhm) * ctx.gain[win]
        u = (ew - keV) / fwhm
        design = np.column_stack([prof, prof * (ew - keV) / (s * s), np.ones_like(u), u])
        sw = 1.0 / np.sqrt(self.fit_var_full[win])
        try:
            q, rr = np.linalg.qr(design * sw[:, None])
            coef = linalg.solve_triangular(rr, q.T @ (resid[win] * sw))
            cov = linalg.inv(rr.T @ rr)
        except (np.linalg.LinAlgError, ValueError):
            return 0.0, math.inf, 0.0, math.inf
        a = float(coef[0])
        se = math.sqrt(max(cov[0, 0], 1e-300))
        if a <= 0:
            return a, se, 0.0, math.inf
        shift = float(coef[1]) / a
        shift_se = math.sqrt(max(cov[1, 1], 0.0)) / a
        return a, se, shift, shift_se

    @property
    def fit_var_full(self) -> np.ndarray:
        """Current fit variance over the whole axis (Poisson outside the fitted range)."""
        out = self.ctx.var.copy()
        out[self.ctx.sel] = 1.0 / self.fit.w
        return out

    # ----------------------------------------------------------------- selection
    def forward(self) -> None:
        while True:
            self.reweight()
            cols0, cons0 = self.cols(self.accepted)
            _, chi0 = self.fit.solve(cols0, cons0)
            scores = []
            for el, model in self.models.items():
                if el in self.accepted:
                    continue
                _, chi = self.fit.solve(cols0 + model.cols, cons0 + model.cons)
                if chi0 - chi >= DCHI2_PRESENT:
                    scores.append((chi0 - chi, el))
            chosen = None
            for _, el in sorted(scores, reverse=True):
                if self.evaluate(el, self.accepted).passes_present:
                    chosen = el
                    break
            if chosen is None:
                return
            self.accepted.append(chosen)

    def backward(self) -> None:
        while self.accepted:
            self.reweight()
            evs = [self.evaluate(el, self.accepted) for el in self.accepted]
            bad = [ev for ev in evs if not ev.passes_present]
            if not bad:
                return
            worst = min(bad, key=lambda ev: ev.dchi2)
            self.accepted.remove(worst.element)

    def add_pileup(self) -> None:
        """Sum-peak components of the three strongest fitted element lines."""
        if not self.accepted:
            return
        cols, x, _ = self.solve(self.accepted)
        lines: dict[str, tuple[float, float]] = {}
        for k, j in enumerate(cols):
            comp = self.fit.comps[j]
            if comp.kind != "element":
                continue
            for p in comp.parts:
                if p.kind == "line":
                    key = f"{comp.element} {p.label}"
                    area = lines.get(key, (0.0, p.keV))[0] + x[k] * p.frac
                    lines[key] = (area, p.keV)
        top = sorted(((a, n, kev) for n, (a, kev) in lines.items() if a > 0), reverse=True)[:3]
        existing = {c.name for c in self.fit.comps}
        for a in range(len(top)):
            for b in range(a, len(top)):
                comp = _sum_component(self.ctx.e, top[a][1:], top[b][1:], self.ctx.fwhm6)
                if comp is not None and comp.name not in existing and np.any(comp.template[self.ctx.sel]):
                    self.base_idx.append(self.fit.add(comp))
                    existing.add(comp.name)
        self.fit.ensure()

    def run(self) -> None:
        self.forward()
        self.backward()
        self.add_pileup()
        self.reweight()
        self.backward()
        self.forward()
        self.backward()


def identify_spectrum(
    counts: Any,
    energies: Any,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    fwhm_at_6keV: float | None = None,
    theta_deg: float | None = None,
    baseline: Any | None = None,
    envelope: Any | None = None,
    candidates: Sequence[str] | None = None,
    systematic: float = 1.0,
    index: int = 0,
    _cache: dict[str, Any] | None = None,
) -> SpectrumIdentification:
    """Identify the elements of one calibrated spectrum (see the module notes).

    Parameters
    ----------
    counts : array_like
        ``(C,)`` counts per channel (a single-pixel or point spectrum: Poisson counts).
    energies : array_like
        ``(C,)`` channel energies (keV), increasing.
    anode : str
        Tube anode (never reported as an element).
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float, optional
        Detector FWHM (keV) at 5.9 keV; measured from the peaks when None.
    theta_deg : float, optional
        Scattering angle (degrees); from the Compton peak when None.
    baseline, envelope : array_like, optional
        ``(C,)`` baseline and noise envelope (counts), e.g. from the hotmax atlas; computed
        with :mod:`maxrf.peaks` when None.
    candidates : sequence of str, optional
        Elements to consider; default :func:`candidate_elements` of the observed peaks.
    systematic : float
        Scale of the model's systematic uncertainty in the fit weights (:data:`SYSTEMATIC`,
        :data:`WING_ERROR`, :data:`DYNAMIC_RANGE`); 0 weighs by counting statistics only.
    index : int
        Spectrum index recorded in the evidence.

    Returns
    -------
    SpectrumIdentification

    Raises
    ------
    ParameterError
        Mismatched or invalid inputs.
    """
    y = np.asarray(counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    if y.ndim != 1 or e.shape != y.shape or y.size < 16:
        raise ParameterError(
            f"counts and energies must be 1-D of the same length (>= 16); got {y.shape}, {e.shape}"
        )
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(e)) and np.all(np.diff(e) > 0)):
        raise ParameterError("counts must be finite and energies strictly increasing (keV)")
    anode = physics.normalize_element(anode)
    if anode not in physics.ANODES:
        raise ParameterError(f"anode must be one of {', '.join(physics.ANODES)}; got {anode!r}")
    tube_kv = float(tube_kv)
    if not (math.isfinite(tube_kv) and 1.0 < tube_kv <= 200.0):
        raise ParameterError(f"tube_kv must be a voltage in kV, got {tube_kv!r}")
    base = None if baseline is None else np.asarray(baseline, dtype=float)
    env = None if envelope is None else np.asarray(envelope, dtype=float)
    for name, arr in (("baseline", base), ("envelope", env)):
        if arr is not None and arr.shape != y.shape:
            raise ParameterError(f"{name} has shape {arr.shape}, the spectrum {y.shape}")
    ctx = _SpectrumContext(
        y, e, anode=anode, tube_kv=tube_kv, fwhm6=fwhm_at_6keV, theta=theta_deg, base=base,
        env=env, eps=float(systematic), index=int(index),
    )
    if candidates is None:
        candidates = candidate_elements(
            ctx.peak_keV, tube_kv=tube_kv, fwhm_at_6keV=ctx.fwhm6, exclude=[anode],
            max_keV=float(e[ctx.sel][-1]) if ctx.sel.any() else None,
        )
    else:
        candidates = [physics.normalize_element(c) for c in candidates]
        candidates = [c for c in candidates if c != anode and c not in EXCLUDED]
    sel = _Selector(ctx, candidates, _cache)
    sel.run()
    return _finish(sel)


def _finish(sel: _Selector) -> SpectrumIdentification:
    ctx = sel.ctx
    sel.reweight()
    cols, x, chi2 = sel.solve(sel.accepted)
    evals = {el: sel.evaluate(el, sel.accepted if el in sel.accepted else sel.accepted + [el])
             for el in sel.models}
    strongest = max((evals[el].counts for el in sel.accepted), default=0.0)
    results: dict[str, ElementResult] = {}
    for el, ev in evals.items():
        if el in sel.accepted:
            status = "present" if ev.passes_present else "possible"
        else:
            status = "possible" if ev.passes_possible else "absent"
        rel = ev.counts / strongest if strongest > 0 else 0.0
        lines = ev.lines if status != "absent" else [ln for ln in ev.lines if ln.visible or ln.seen]
        results[el] = ElementResult(
            el, status, ev.confidence, ev.counts, rel, ev.z, ev.dchi2, ev.fraction, lines, [ctx.index]
        )
    model_net = sel.full_model(cols, x)
    instrument, peaks, unexplained = _explain_peaks(sel, cols, x, model_net)
    n_fit = int(np.count_nonzero(ctx.sel))
    return SpectrumIdentification(
        index=ctx.index,
        elements=results,
        instrument=instrument,
        peaks=peaks,
        unexplained_keV=unexplained,
        energies=ctx.e,
        counts=ctx.y,
        baseline=ctx.base,
        envelope=ctx.env,
        model=ctx.base + model_net,
        fwhm_at_6keV=ctx.fwhm6,
        theta_deg=ctx.theta,
        chi2_reduced=float(chi2 / max(n_fit - len(cols), 1)),
    )


def _explain_peaks(
    sel: _Selector, cols: Sequence[int], x: np.ndarray, model_net: np.ndarray
) -> tuple[list[dict[str, Any]], list[ObservedPeak], list[float]]:
    """Instrument peaks seen, labels of the observed peaks, unexplained peaks."""
    ctx, fit = sel.ctx, sel.fit
    noise_env = ctx.env - ctx.base
    fit_var = sel.fit_var_full
    # net area of every part of the final model: (part, component kind, element) -> area
    areas: dict[tuple[str, str, str | None], list] = {}
    for k, j in enumerate(cols):
        comp = fit.comps[j]
        if x[k] == 0:
            continue
        for p in comp.parts:
            key = (p.label, comp.kind if comp.kind != "element" else "element", comp.element)
            if key not in areas:
                areas[key] = [p, 0.0]
            areas[key][1] += x[k] * p.frac
    parts = [(p, kind, el, area) for (_, kind, el), (p, area) in areas.items() if area > 0]
    instrument: list[dict[str, Any]] = []
    for p, kind, el, area in parts:
        if kind == "element" and p.kind != "escape":
            continue
        if not (ctx.e[0] <= p.keV <= ctx.e[-1]):
            continue
        i = int(np.argmin(np.abs(ctx.e - p.keV)))
        height = area * ctx.gain[i] / (p.fwhm / physics.FWHM_PER_SIGMA * _SQRT2PI)
        if not ctx.sel[i]:
            continue
        # seen: above the envelope, or a broad peak (Compton) whose fitted area is significant
        _, se, _, _ = sel._local_peak(ctx.net - model_net, p.keV, p.fwhm)
        if height > noise_env[i] or area >= INSTRUMENT_Z * se:
            name = p.label if kind != "element" else f"{el} {p.label}"
            kd = "escape" if p.kind == "escape" else kind
            instrument.append({"name": name, "keV": round(float(p.keV), 4), "kind": kd,
                               "counts": float(area)})
    if ctx.e[0] < 0 < ctx.e[-1]:  # the zero peak, when the axis holds 0 keV
        i0 = int(np.argmin(np.abs(ctx.e)))
        lo, hi = max(i0 - 3, 0), min(i0 + 4, ctx.e.size)
        if np.max(ctx.ys[lo:hi]) > ctx.env[i0]:
            instrument.append({"name": "zero peak", "keV": 0.0, "kind": "zero",
                               "counts": float(ctx.y[lo:hi].sum())})
    instrument.sort(key=lambda d: d["keV"])
    peaks: list[ObservedPeak] = []
    unexplained: list[float] = []
    for i, keV in zip(ctx.peak_idx, ctx.peak_keV):
        net = float(ctx.ys[i] - ctx.base[i])
        explained = float(model_net[i] / net) if net > 0 else 1.0
        best, best_h = None, 0.0
        for p, kind, el, area in parts:
            if abs(p.keV - keV) > 1.5 * p.fwhm:
                continue
            h = area * _gauss_profile(np.array([ctx.e[i]]), p.keV, p.fwhm)[0] * ctx.gain[i]
            if h > best_h:
                best, best_h = (p, kind, el), h
        resid = net - model_net[i]
        sigma = math.sqrt(fit_var[i])
        if best is not None and explained >= 0.5 and resid <= 5.0 * sigma:
            p, kind, el = best
            if kind == "element":
                label = f"{el} {p.label}"
                kd = "escape" if p.kind == "escape" else "element"
            else:
                label, kd = p.label, ("escape" if p.kind == "escape" else kind)
        else:
            label, kd = "?", "unexplained"
            unexplained.append(float(keV))
        peaks.append(ObservedPeak(float(keV), int(i), net, label, kd, explained))
    return instrument, peaks, unexplained


# =========================================================================== sources
def _calibration_energies(calibration: Any, n: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Energies from a Calibration, a dict, a (gain, offset) pair or an energy array."""
    info: dict[str, Any] = {}
    if calibration is None:
        return None, info
    if callable(getattr(calibration, "energies", None)) and hasattr(calibration, "gain_keV"):
        info = {"theta_deg": getattr(calibration, "theta_deg", None),
                "quality": getattr(calibration, "quality", {}) or {}}
        return np.asarray(calibration.energies(n), dtype=float), info
    if isinstance(calibration, Mapping):
        try:
            gain, offset = float(calibration["gain_keV"]), float(calibration["offset_keV"])
        except (KeyError, TypeError, ValueError):
            raise ParameterError("calibration dict needs 'gain_keV' and 'offset_keV'") from None
        info = {"theta_deg": calibration.get("theta_deg"), "quality": calibration.get("quality") or {}}
        return offset + gain * np.arange(n, dtype=float), info
    arr = np.asarray(calibration, dtype=float)
    if arr.shape == (2,):
        return arr[1] + arr[0] * np.arange(n, dtype=float), info
    if arr.shape == (n,):
        return arr, info
    raise ParameterError(
        "calibration must be a Calibration, a dict with gain_keV/offset_keV, a (gain_keV, "
        f"offset_keV) pair or {n} channel energies; got {type(calibration).__name__}"
    )


def _aggregate(
    results: Sequence[SpectrumIdentification], anode: str, tube_kv: float, source: str
) -> Identification:
    rank = {s: i for i, s in enumerate(STATUSES)}
    by_el: dict[str, list[ElementResult]] = {}
    for res in results:
        for el, r in res.elements.items():
            by_el.setdefault(el, []).append(r)
    elements: list[ElementResult] = []
    for el, rs in by_el.items():
        best_status = min((r.status for r in rs), key=lambda s: rank[s])
        same = [r for r in rs if r.status == best_status]
        top = max(same, key=lambda r: r.confidence)
        lines: list[LineEvidence] = []
        for r in sorted(same, key=lambda r: -r.confidence):
            lines.extend(r.lines if best_status != "absent" else [])
        if best_status == "absent":
            lines = list(top.lines)
        elements.append(
            ElementResult(
                el, best_status, top.confidence, top.counts,
                max(r.relative for r in same), top.z, top.delta_chi2, top.line_fraction, lines,
                sorted({s for r in same for s in r.spectra}),
            )
        )
    elements.sort(key=lambda r: (rank[r.status], -r.confidence, r.element))
    inst: dict[str, dict[str, Any]] = {}
    for res in results:
        for p in res.instrument:
            d = inst.setdefault(
                p["name"], {"name": p["name"], "keV": p["keV"], "kind": p["kind"], "spectra": []}
            )
            d["spectra"].append(res.index)
    instrument = sorted(inst.values(), key=lambda d: d["keV"])
    # a peak left unexplained in one spectrum but matching a line of an element found (or
    # possible) in the scan, or an instrument peak, is explained after all
    fwhm6 = float(np.median([r.fwhm_at_6keV for r in results])) if results else 0.145
    known = [d["keV"] for d in instrument]
    for r in elements:
        if r.status != "absent":
            pat = element_pattern(r.element, tube_kv, min_rel=0.02, fwhm_at_6keV=fwhm6)
            known += [p.energy_keV for p in pat.peaks]
            known += [p.escape_keV for p in pat.peaks if p.escape_keV is not None]
    known_arr = np.sort(np.asarray(known, dtype=float))
    unexplained: list[float] = []
    for v in sorted(v for res in results for v in res.unexplained_keV):
        tol = 0.5 * float(physics.fwhm_keV(v, fwhm6))
        if known_arr.size and np.min(np.abs(known_arr - v)) <= tol:
            continue
        if not unexplained or v - unexplained[-1] > tol:
            unexplained.append(v)
    return Identification(elements, instrument, unexplained, anode, tube_kv, list(results), source)


def _atlas_arrays(source: Any) -> dict[str, Any] | None:
    """Spectra (+ baselines, envelopes, energies) of a hotmax atlas-like object."""
    spectra = getattr(source, "hotmax_spectra", None)
    if spectra is None:
        return None
    out: dict[str, Any] = {"spectra": np.asarray(spectra, dtype=float)}
    energies = getattr(source, "x_keVs", None)
    out["energies"] = None if energies is None else np.asarray(energies, dtype=float)
    for key, names in (("baselines", ("baselines", "hotmax_baselines")),
                       ("envelopes", ("envelopes", "noise_envelopes", "hotmax_envelopes"))):
        val = None
        for nm in names:
            val = getattr(source, nm, None)
            if val is not None and not callable(val):
                break
            val = None
        out[key] = None if val is None else np.asarray(val, dtype=float)
    return out


def _datastack_atlas(ds: Any, store: bool = True) -> dict[str, Any]:
    """Hotmax spectra, baselines and envelopes of a DataStack (:class:`maxrf.hotmax.HotmaxAtlas`
    reads its stored ``hotmax`` layer, or builds -- and with ``store`` stores -- it)."""
    from maxrf.hotmax import HotmaxAtlas

    arrays = _atlas_arrays(HotmaxAtlas(ds, store=store))
    if arrays is None:  # pragma: no cover - HotmaxAtlas always has hotmax_spectra
        raise ParameterError("the hotmax atlas has no spectra")
    arrays["energies"] = None
    return arrays


def identify(
    source: Any,
    *,
    anode: str | None = None,
    tube_kv: float | None = None,
    calibration: Any | None = None,
    fwhm_at_6keV: float | None = None,
    theta_deg: float | None = None,
    write: bool = True,
) -> Identification:
    """Identify the elements of a scan or a spectrum, with the evidence.

    Parameters
    ----------
    source : DataStack, HotmaxAtlas, Spectrum, str, path or (counts, energies)
        * a :class:`maxrf.store.DataStack` (or its path): every hotmax spectrum (``hotmax``
          layer, else :class:`maxrf.hotmax.HotmaxAtlas`) is identified; the result is
          stored as the ``identification`` layer when ``write``;
        * a hotmax atlas (``hotmax_spectra``, ``x_keVs``, optional baselines/envelopes);
        * a :class:`maxrf.io.spectra.Spectrum` (or a ``.msa`` / ``.spx`` path): calibrated
          from its counts alone with :func:`maxrf.calibration.auto_calibrate` -- never the
          file header -- unless ``calibration`` is given;
        * a pair ``(counts, energies)`` (keV).
    anode : str, optional
        Tube anode; default the source's (spectrum header, datastack calibration) or Rh.
    tube_kv : float, optional
        Tube voltage (kV); default the source's or 40.
    calibration : Calibration, dict, (gain_keV, offset_keV) or array, optional
        Energy calibration to use instead of the source's own / the automatic one.
    fwhm_at_6keV : float, optional
        Detector FWHM (keV) at 5.9 keV; measured from the peaks when None.
    theta_deg : float, optional
        Scattering angle (degrees); from the calibration or the Compton peak when None.
    write : bool
        Store the result in a DataStack source as layer ``identification``.

    Returns
    -------
    Identification

    Raises
    ------
    ParameterError
        Unknown source type or invalid option.
    CalibrationError
        No energy calibration could be found.
    LayerMissingError
        A DataStack without an energy calibration.
    """
    from maxrf.io.spectra import SUPPORTED_SUFFIXES, Spectrum, read_spectrum

    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.suffix.lower() in SUPPORTED_SUFFIXES and not p.is_dir():
            source = read_spectrum(p)
        else:
            from maxrf.store import DataStack

            source = DataStack(p)
    if isinstance(source, Spectrum):
        return _identify_point(
            source.counts, anode or source.anode or "Rh", tube_kv or source.tube_kv or 40.0,
            calibration, fwhm_at_6keV, theta_deg, str(source.path),
        )
    if isinstance(source, tuple) and len(source) == 2:
        counts, energies = source
        cal = calibration if calibration is not None else energies
        return _identify_point(
            counts, anode or "Rh", tube_kv or 40.0, cal, fwhm_at_6keV, theta_deg, "spectrum"
        )
    try:
        from maxrf.store import DataStack
    except ImportError:  # pragma: no cover
        DataStack = None  # noqa: N806
    if DataStack is not None and isinstance(source, DataStack):
        return _identify_datastack(source, anode, tube_kv, calibration, fwhm_at_6keV, theta_deg, write)
    arrays = _atlas_arrays(source)
    if arrays is not None:
        ds = getattr(source, "ds", None) or getattr(source, "datastack", None)
        cal_info: dict[str, Any] = {}
        n = arrays["spectra"].shape[1]
        if calibration is not None:
            arrays["energies"], cal_info = _calibration_energies(calibration, n)
        if arrays["energies"] is None and ds is not None:
            arrays["energies"] = np.asarray(ds.energies, dtype=float)
        if arrays["energies"] is None:
            raise ParameterError("the atlas has no energy axis (x_keVs); pass calibration=")
        return _identify_atlas(
            arrays, anode or "Rh", tube_kv or 40.0, fwhm_at_6keV,
            theta_deg if theta_deg is not None else cal_info.get("theta_deg"), "atlas",
        )
    raise ParameterError(
        f"cannot identify a {type(source).__name__}: give a DataStack, a hotmax atlas, a "
        "Spectrum, a spectrum file or (counts, energies)"
    )


def _identify_point(
    counts: Any, anode: str, tube_kv: float, calibration: Any, fwhm6: float | None,
    theta: float | None, source: str,
) -> Identification:
    y = np.asarray(counts, dtype=float)
    if y.ndim != 1:
        raise ParameterError(f"a spectrum must be 1-D, got shape {y.shape}")
    info: dict[str, Any] = {}
    if calibration is None:
        from maxrf.calibration import auto_calibrate

        try:
            cal = auto_calibrate(y, anode=anode, tube_kv=tube_kv)
        except CalibrationError as exc:
            raise CalibrationError(
                f"no energy calibration found from the counts ({exc.problem}); pass calibration=",
                None if source == "spectrum" else source,
            ) from exc
        e = cal.energies(y.size)
        info = {"theta_deg": cal.theta_deg, "quality": cal.quality or {}}
    else:
        e, info = _calibration_energies(calibration, y.size)
    if fwhm6 is None:
        fwhm6 = None  # measured from the peaks (more reliable than a calibration's guess)
    res = identify_spectrum(
        y, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6,
        theta_deg=theta if theta is not None else info.get("theta_deg"),
    )
    return _aggregate([res], physics.normalize_element(anode), float(tube_kv), source)


def _identify_atlas(
    arrays: Mapping[str, Any], anode: str, tube_kv: float, fwhm6: float | None,
    theta: float | None, source: str,
) -> Identification:
    spectra = np.atleast_2d(arrays["spectra"])
    e = np.asarray(arrays["energies"], dtype=float)
    bases = arrays.get("baselines")
    envs = arrays.get("envelopes")
    # one detector resolution and scattering angle for all spectra, from their sum (more
    # counts than any single pixel; the sum of Poisson counts is Poisson)
    total = spectra.sum(axis=0)
    if fwhm6 is None:
        fwhm6 = estimate_fwhm6(total, e, anode=anode, tube_kv=tube_kv) or 0.145
    if theta is None:
        theta = estimate_theta(total, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6)
    cache: dict[str, list[_Atom]] = {}
    results = []
    for n in range(spectra.shape[0]):
        results.append(
            identify_spectrum(
                spectra[n], e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6, theta_deg=theta,
                baseline=None if bases is None else bases[n],
                envelope=None if envs is None else envs[n], index=n, _cache=cache,
            )
        )
    return _aggregate(results, physics.normalize_element(anode), float(tube_kv), source)


def _identify_datastack(
    ds: Any, anode: str | None, tube_kv: float | None, calibration: Any, fwhm6: float | None,
    theta: float | None, write: bool,
) -> Identification:
    cal = ds.calibration or {}
    anode = anode or cal.get("anode") or "Rh"
    tube_kv = tube_kv or cal.get("tube_kv") or 40.0
    arrays = _datastack_atlas(ds, store=write)
    n = arrays["spectra"].shape[1]
    if calibration is not None:
        arrays["energies"], info = _calibration_energies(calibration, n)
    else:
        arrays["energies"] = np.asarray(ds.energies, dtype=float)
        info = {"theta_deg": cal.get("theta_deg")}
    res = _identify_atlas(
        arrays, anode, float(tube_kv), fwhm6,
        theta if theta is not None else info.get("theta_deg"), str(ds.path),
    )
    if write:
        write_identification(ds, res)
    return res


def write_identification(ds: Any, ident: Identification) -> None:
    """Store an identification as the DataStack layer ``identification``.

    Parameters
    ----------
    ds : DataStack
        Target store.
    ident : Identification
        The result; its :meth:`Identification.to_dict` becomes the layer's attrs, and the
        per-spectrum confidences the array ``scores`` ``(n_spectra, n_elements)``.
    """
    attrs = ident.to_dict()
    names = [r.element for r in ident.elements]
    scores = np.zeros((len(ident.spectra), len(names)), dtype=np.float32)
    for i, s in enumerate(ident.spectra):
        for k, el in enumerate(names):
            r = s.elements.get(el)
            scores[i, k] = 0.0 if r is None else r.confidence
    attrs["score_elements"] = names
    try:
        ds.write_layer("identification", {"scores": scores}, attrs)
    except MaxrfError:
        raise
    except OSError as exc:  # pragma: no cover - read-only medium
        raise OutputLocationError(f"cannot write the identification layer ({exc})", ds.path) from exc

