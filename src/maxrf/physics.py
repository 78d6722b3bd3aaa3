"""X-ray physics for MA-XRF: emission line tables, scattering, detector response.

Every atomic quantity (line energies, transition probabilities, fluorescence yields,
absorption edges and jump ratios, Coster-Kronig probabilities, attenuation coefficients)
comes from :mod:`xraydb`; nothing atomic is typed by hand here. The few numbers that are
typed are *model* or *instrument* parameters (the Fano factor and pair energy of silicon,
the photo-absorption exponent, window thicknesses...), named as module constants.

Relative line intensities (:func:`element_lines`)
-------------------------------------------------
For every emission line of an element (``xraydb.xray_lines``) the relative intensity is::

    rel = n(initial level) * omega(initial level) * transition probability

* ``transition probability``: ``XrayLine.intensity`` (xraydb normalises it per initial
  level).
* ``omega``: the fluorescence yield of the initial level (``xraydb.xray_edge``).
* ``n``: the vacancy rate of the initial level. The primary rate of a shell ``s`` with
  edge ``E_s`` and jump ratio ``J_s`` is ``(1 - 1/J_s) * g(E0 / E_s)`` when ``E_s`` is
  below the tube voltage ``E0``, else 0. ``(1 - 1/J_s)`` is the share of the
  photo-absorption just above the edge that goes to shell ``s`` (the L1 and L2 jump
  ratios are the ones xraydb tabulates, not estimates). ``g`` is an over-voltage factor:
  the Kramers bremsstrahlung spectrum ``(E0 - E)/E`` times a photo-absorption
  cross-section ``~ E**-2.7`` integrated from the edge to ``E0``, scaled so that ``g -> 1``
  for ``E0 >> E_s`` and ``g = 0`` at ``E0 = E_s``; it makes K lines of elements whose K
  edge is close to the tube voltage (Sn, Sb, Ba at 40 kV) weak, as they are. The shells
  share one absolute cross-section scale (a simplification). L sub-shell vacancies are
  redistributed by Coster-Kronig transitions (``xraydb.ck_probability``):
  ``n1 = P1``, ``n2 = P2 + f12 P1``, ``n3 = P3 + f23 P2 + f13' P1`` (``f13'`` includes the
  L1->L2->L3 path). M sub-shells use their primary rates (no Coster-Kronig).
  A combined initial level such as ``M4,5`` uses its first sub-shell (``M4``).
* Intensities are normalised so that the strongest line *kept* (edge below ``E0``, energy
  at least ``min_keV``) is 1; lines below ``min_rel`` are dropped.

Left out: excitation by the anode's characteristic lines, cascade vacancies (K -> L),
matrix absorption and enhancement, air and detector-window absorption of the emitted
lines, detector efficiency.

Detector
--------
Resolution: ``FWHM**2 = noise**2 + 2.3548**2 * F * eps * E`` with Fano factor
``F = 0.114`` and ``eps = 3.85 eV`` per electron-hole pair in silicon. ``fwhm_at_6keV``
is the FWHM at **5.9 keV** (Mn K-alpha, how detector resolution is specified); the
electronic noise term is solved from it. Escape peaks: Si K-alpha escape at ``E - 1.740``
keV with the Reed & Ware (1972) escape fraction for normal incidence, computed from
xraydb attenuation coefficients (about 1.4 % just above the Si K edge, 0.3 % at Fe K-alpha,
under 0.1 % above 10 keV).

Templates (:func:`element_spectrum`, :func:`scatter_spectrum`, :func:`zero_peak`) are
per-channel counts for a unit total emitted area: Gaussians integrated exactly over each
channel, so a template sums to 1 over the channels when all of its peaks lie on the axis.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xraydb
from scipy.constants import physical_constants
from scipy.special import ndtr

from maxrf.errors import ParameterError

__all__ = [
    "ANODES",
    "Line",
    "anode_lines",
    "compton_shift",
    "continuum_spectrum",
    "detector_angle",
    "element_color",
    "element_lines",
    "element_spectrum",
    "escape_energy",
    "escape_fraction",
    "fwhm_keV",
    "gaussian_peaks",
    "line_energy",
    "line_spectrum",
    "normalize_element",
    "noise_fwhm_keV",
    "scatter_spectrum",
    "zero_peak",
]

#: electron rest energy (keV), CODATA via scipy
ELECTRON_REST_KEV: float = physical_constants["electron mass energy equivalent in MeV"][0] * 1e3
#: Gaussian FWHM / sigma
FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Fano factor of silicon (model parameter)
FANO_SI: float = 0.114
#: energy per electron-hole pair in silicon (keV)
PAIR_ENERGY_SI_KEV: float = 3.85e-3
#: energy (keV) at which ``fwhm_at_6keV`` is specified (Mn K-alpha)
FWHM_REFERENCE_KEV: float = 5.9
#: exponent of the photo-absorption cross-section ~ E**-n used for the over-voltage factor
PHOTO_EXPONENT: float = 2.7
#: supported X-ray tube anodes
ANODES: tuple[str, ...] = ("Rh", "Mo", "W", "Ag", "Cr", "Cu")
#: supported detector crystals for escape peaks
DETECTORS: tuple[str, ...] = ("Si", "Ge")

# continuum model (instrument parameters)
_TUBE_BE_UM = 100.0  # tube exit window (Be, micrometre)
_DETECTOR_BE_UM = 12.0  # detector window (Be, micrometre)
_AIR_CM = 2.0  # total air path tube -> sample -> detector (cm)
_MATRIX = ("C6H10O5", 1.0)  # scattering matrix of the continuum (cellulose-like paper)


# --------------------------------------------------------------------------- elements
def normalize_element(element: str | int) -> str:
    """Canonical chemical symbol of an element.

    Parameters
    ----------
    element : str or int
        Symbol in any case (``'fe'``, ``'FE'``) or atomic number.

    Returns
    -------
    str
        The symbol (``'Fe'``).

    Raises
    ------
    ParameterError
        Unknown element.
    """
    try:
        if isinstance(element, str):
            element = element.strip()
            z = xraydb.atomic_number(element.capitalize())
        elif isinstance(element, (int, np.integer)) and not isinstance(element, bool):
            z = int(element)
        else:
            raise ValueError
        if not 1 <= z <= 98:
            raise ValueError
        return str(xraydb.atomic_symbol(z))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ParameterError(f"unknown element {element!r}") from None


@dataclass(frozen=True)
class Line:
    """One fluorescence emission line of an element.

    Attributes
    ----------
    element : str
        Chemical symbol.
    siegbahn : str
        Siegbahn-like name as xraydb gives it (``'Ka1'``, ``'Lb2,15'``, ``'Ma'``).
    iupac : str
        IUPAC transition ``initial-final`` (``'K-L3'``, ``'L3-M5'``, ``'M5-N6,7'``).
    energy_keV : float
        Line energy (keV).
    rel_intensity : float
        Intensity relative to the strongest kept line of the element (= 1).
    family : str
        ``'K'``, ``'L'`` or ``'M'`` (shell of the initial vacancy).
    edge_keV : float
        Absorption edge (keV) of the initial level: the line is excited only above it.
    """

    element: str
    siegbahn: str
    iupac: str
    energy_keV: float
    rel_intensity: float
    family: str
    edge_keV: float = float("nan")


def _overvoltage(u: float) -> float:
    """Over-voltage factor g(U), 0 at U = 1, -> 1 for U -> infinity (see module doc)."""
    if not u > 1.0:
        return 0.0
    if math.isinf(u):
        return 1.0
    n = PHOTO_EXPONENT
    return max(0.0, 1.0 - u**-n - (n / (n - 1.0)) * (1.0 - u ** (1.0 - n)) / u)


@functools.lru_cache(maxsize=256)
def _element_data(symbol: str) -> tuple[dict, dict, dict]:
    """xraydb lines, edges and L Coster-Kronig probabilities of one element (cached)."""
    lines = dict(xraydb.xray_lines(symbol))
    edges = dict(xraydb.xray_edges(symbol))
    ck: dict[tuple[str, str], float] = {}
    if all(k in edges for k in ("L1", "L2", "L3")):
        for a, b in (("L1", "L2"), ("L1", "L3"), ("L2", "L3")):
            try:
                ck[(a, b)] = float(xraydb.ck_probability(symbol, a, b, total=True))
            except Exception:  # no Coster-Kronig data: no redistribution
                ck[(a, b)] = 0.0
    return lines, edges, ck


def _vacancy_rates(edges: Mapping, ck: Mapping, e0_eV: float) -> dict[str, float]:
    """Vacancy rate per sub-shell for excitation by a tube at ``e0_eV`` (eV)."""
    primary: dict[str, float] = {}
    for name, edge in edges.items():
        jump = float(edge.jump_ratio)
        if edge.energy <= 0 or jump <= 1.0 or not e0_eV > edge.energy:
            primary[name] = 0.0
            continue
        primary[name] = (1.0 - 1.0 / jump) * _overvoltage(e0_eV / edge.energy)
    rates = dict(primary)
    if ck:
        p1, p2, p3 = primary.get("L1", 0.0), primary.get("L2", 0.0), primary.get("L3", 0.0)
        rates["L2"] = p2 + ck[("L1", "L2")] * p1
        rates["L3"] = p3 + ck[("L2", "L3")] * p2 + ck[("L1", "L3")] * p1
    return rates


def _initial_shell(level: str) -> str:
    """'M4,5' -> 'M4'; 'K' -> 'K'."""
    return level.split(",")[0].strip()


@functools.lru_cache(maxsize=1024)
def _element_lines_cached(
    symbol: str, tube_kv: float | None, min_keV: float, min_rel: float
) -> tuple[Line, ...]:
    lines, edges, ck = _element_data(symbol)
    e0 = math.inf if tube_kv is None else tube_kv * 1e3
    rates = _vacancy_rates(edges, ck, e0)
    raw: list[tuple[str, str, float, float, str, float]] = []
    for name, xl in lines.items():
        shell = _initial_shell(xl.initial_level)
        edge = edges.get(shell)
        if edge is None:
            continue
        energy = float(xl.energy) / 1e3
        if energy < min_keV:
            continue
        weight = rates.get(shell, 0.0) * float(edge.fyield) * float(xl.intensity)
        if not weight > 0:
            continue
        iupac = f"{xl.initial_level}-{xl.final_level}"
        raw.append((name, iupac, energy, weight, shell[0], float(edge.energy) / 1e3))
    if not raw:
        return ()
    top = max(r[3] for r in raw)
    out = [
        Line(symbol, name, iupac, energy, weight / top, family, edge_keV)
        for name, iupac, energy, weight, family, edge_keV in raw
        if weight / top >= min_rel
    ]
    out.sort(key=lambda ln: (ln.energy_keV, ln.siegbahn))
    return tuple(out)


def _check_positive(name: str, value: float, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ParameterError(f"{name} must be a positive finite number, got {value!r}")
    return v


def element_lines(
    element: str | int,
    tube_kv: float | None = 40.0,
    *,
    min_keV: float = 1.0,
    min_rel: float = 1e-3,
) -> list[Line]:
    """Fluorescence lines of an element excited by an X-ray tube, with relative intensities.

    Parameters
    ----------
    element : str or int
        Chemical symbol (any case) or atomic number.
    tube_kv : float or None
        Tube voltage (kV): only lines whose initial-level edge lies below it are excited.
        ``None`` means every level is excited with equal efficiency (no tube cut-off).
    min_keV : float
        Lines below this energy (keV; the detector's low-energy cut-off) are dropped.
    min_rel : float
        Lines weaker than this fraction of the strongest kept line are dropped.

    Returns
    -------
    list of Line
        Sorted by energy; the strongest has ``rel_intensity == 1``. Empty when no line
        is excited above ``min_keV``.

    Raises
    ------
    ParameterError
        Unknown element or invalid number.
    """
    symbol = normalize_element(element)
    kv = _check_positive("tube_kv", tube_kv, allow_none=True)
    try:
        min_keV = float(min_keV)
        min_rel = float(min_rel)
    except (TypeError, ValueError):
        raise ParameterError(
            f"min_keV and min_rel must be numbers, got {min_keV!r}, {min_rel!r}"
        ) from None
    if not (math.isfinite(min_keV) and math.isfinite(min_rel) and min_rel >= 0):
        raise ParameterError(f"invalid min_keV={min_keV!r} or min_rel={min_rel!r}")
    return list(_element_lines_cached(symbol, kv, min_keV, min_rel))


def _group_lines(symbol: str, line: str) -> list[Line]:
    if not isinstance(line, str) or not line.strip():
        raise ParameterError(f"line must be a name such as 'Ka' or 'La1', got {line!r}")
    name = line.strip()
    name = name[0].upper() + name[1:].lower()
    pool = _element_lines_cached(symbol, None, 0.0, 0.0)
    if name in ("K", "L", "M"):
        chosen = [ln for ln in pool if ln.family == name]
    else:
        chosen = [ln for ln in pool if ln.siegbahn.lower() == name.lower()]
        if not chosen:
            chosen = [ln for ln in pool if ln.siegbahn.startswith(name)]
    if not chosen:
        raise ParameterError(f"{symbol} has no {line!r} line in xraydb")
    return chosen


def line_energy(element: str | int, line: str = "Ka") -> float:
    """Intensity-weighted energy (keV) of a line or line group.

    Parameters
    ----------
    element : str or int
        Chemical symbol or atomic number.
    line : str
        A group (``'Ka'``, ``'Kb'``, ``'La'``, ``'Lb'``, ``'Lg'``, ``'Ma'``, ``'Mb'``...,
        every line whose Siegbahn name starts with it), a precise line (``'Ka1'``,
        ``'Lb2,15'``) or a family (``'K'``, ``'L'``, ``'M'``). Weights are the relative
        intensities of :func:`element_lines` with every level excited (``tube_kv=None``).

    Returns
    -------
    float
        Energy in keV.

    Raises
    ------
    ParameterError
        Unknown element or the element has no such line.
    """
    symbol = normalize_element(element)
    chosen = _group_lines(symbol, line)
    w = np.array([ln.rel_intensity for ln in chosen])
    e = np.array([ln.energy_keV for ln in chosen])
    return float(np.sum(w * e) / np.sum(w))


def anode_lines(anode: str = "Rh", tube_kv: float = 40.0) -> list[Line]:
    """Characteristic lines of an X-ray tube anode (K, L and M lines above 1 keV).

    Relative intensities follow the photon-excitation model of :func:`element_lines`
    (a tube excites its anode with electrons; the K/L balance is therefore approximate).

    Parameters
    ----------
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Anode element.
    tube_kv : float
        Tube voltage (kV).

    Returns
    -------
    list of Line
        Sorted by energy.

    Raises
    ------
    ParameterError
        Unsupported anode.
    """
    symbol = normalize_element(anode) if isinstance(anode, (str, int)) else anode
    if symbol not in ANODES:
        raise ParameterError(f"anode must be one of {', '.join(ANODES)}; got {anode!r}")
    return element_lines(symbol, tube_kv, min_keV=1.0)


# --------------------------------------------------------------------------- scattering
def compton_shift(keV: float | np.ndarray, theta_deg: float | np.ndarray) -> float | np.ndarray:
    """Energy of a photon Compton-scattered through an angle.

    ``E' = E / (1 + E / (m_e c^2) * (1 - cos theta))``.

    Parameters
    ----------
    keV : float or array_like
        Incident photon energy (keV).
    theta_deg : float or array_like
        Scattering angle (degrees); broadcast against ``keV``.

    Returns
    -------
    float or numpy.ndarray
        Scattered photon energy (keV).
    """
    e = np.asarray(keV, dtype=float)
    t = np.deg2rad(np.asarray(theta_deg, dtype=float))
    out = e / (1.0 + e / ELECTRON_REST_KEV * (1.0 - np.cos(t)))
    return float(out) if out.ndim == 0 else out


def detector_angle(
    compton_keV: float | np.ndarray, anode_keV: float | np.ndarray
) -> float | np.ndarray:
    """Scattering angle from the Compton peak position (inverse of :func:`compton_shift`).

    Parameters
    ----------
    compton_keV : float or array_like
        Energy of the Compton-scattered peak (keV).
    anode_keV : float or array_like
        Energy of the incident (Rayleigh) line (keV).

    Returns
    -------
    float or numpy.ndarray
        Scattering angle (degrees, 0..180).

    Raises
    ------
    ParameterError
        The Compton energy is not between the 180-degree limit and the incident energy.
    """
    ec = np.asarray(compton_keV, dtype=float)
    e0 = np.asarray(anode_keV, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_t = 1.0 - ELECTRON_REST_KEV * (1.0 / ec - 1.0 / e0)
    tol = 1e-9
    if not np.all((ec > 0) & (e0 > 0) & (cos_t >= -1 - tol) & (cos_t <= 1 + tol)):
        raise ParameterError(
            f"Compton energy {compton_keV!r} keV is impossible for incident {anode_keV!r} keV "
            "(it must lie between the 180-degree backscatter energy and the incident energy)"
        )
    out = np.rad2deg(np.arccos(np.clip(cos_t, -1.0, 1.0)))
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- detector
def _detector(detector: str) -> str:
    symbol = normalize_element(detector) if isinstance(detector, str) else detector
    if symbol not in DETECTORS:
        raise ParameterError(f"detector must be one of {', '.join(DETECTORS)}; got {detector!r}")
    return symbol


def escape_energy(keV: float | np.ndarray, detector: str = "Si") -> float | np.ndarray:
    """Energy of the detector K-alpha escape peak of a line.

    Parameters
    ----------
    keV : float or array_like
        Line energy (keV).
    detector : {'Si', 'Ge'}
        Detector crystal.

    Returns
    -------
    float or numpy.ndarray
        ``keV - E(K-alpha of the detector)`` (keV); Si K-alpha = 1.740 keV from xraydb.
    """
    out = np.asarray(keV, dtype=float) - line_energy(_detector(detector), "Ka")
    return float(out) if out.ndim == 0 else out


@functools.lru_cache(maxsize=4)
def _escape_constants(det: str) -> tuple[float, float, float, float]:
    k = xraydb.xray_edge(det, "K")
    ka = line_energy(det, "Ka")
    mu_k = float(xraydb.mu_elam(det, ka * 1e3, kind="photo"))
    return float(k.energy) / 1e3, float(k.fyield), float(k.jump_ratio), mu_k


def escape_fraction(keV: float | np.ndarray, detector: str = "Si") -> float | np.ndarray:
    """Fraction of photons of a line that end in the detector's K-alpha escape peak.

    Reed & Ware (1972), normal incidence, semi-infinite crystal::

        f = 0.5 * omega_K * (1 - 1/J_K) * (1 - (mu_K/mu_E) * ln(1 + mu_E/mu_K))

    with ``mu_E`` / ``mu_K`` the photo-absorption coefficients of the crystal at the line
    energy and at its own K-alpha energy (xraydb). Zero below the crystal's K edge.

    Parameters
    ----------
    keV : float or array_like
        Line energy (keV).
    detector : {'Si', 'Ge'}
        Detector crystal.

    Returns
    -------
    float or numpy.ndarray
        Escape fraction (0..1).
    """
    det = _detector(detector)
    edge, omega, jump, mu_k = _escape_constants(det)
    e = np.atleast_1d(np.asarray(keV, dtype=float))
    out = np.zeros_like(e)
    above = e > edge
    if np.any(above):
        mu_e = np.atleast_1d(xraydb.mu_elam(det, e[above] * 1e3, kind="photo"))
        ratio = mu_k / mu_e
        out[above] = 0.5 * omega * (1 - 1 / jump) * (1 - ratio * np.log1p(1 / ratio))
    out = np.clip(out, 0.0, 1.0)
    return float(out[0]) if np.ndim(keV) == 0 else out.reshape(np.shape(keV))


def _fano_term(fwhm_at_6keV: float) -> tuple[float, float]:
    """(noise**2, slope) of FWHM**2 = noise**2 + slope * E (keV**2, keV)."""
    f6 = _check_positive("fwhm_at_6keV", fwhm_at_6keV)
    slope = FWHM_PER_SIGMA**2 * FANO_SI * PAIR_ENERGY_SI_KEV
    noise2 = f6**2 - slope * FWHM_REFERENCE_KEV
    if noise2 < 0:
        limit = math.sqrt(slope * FWHM_REFERENCE_KEV)
        raise ParameterError(
            f"fwhm_at_6keV={fwhm_at_6keV!r} keV is below the Fano limit of silicon "
            f"({limit:.4f} keV at {FWHM_REFERENCE_KEV} keV)"
        )
    return noise2, slope


def fwhm_keV(keV: float | np.ndarray, fwhm_at_6keV: float = 0.145) -> float | np.ndarray:
    """Detector energy resolution (FWHM) with Fano statistics.

    ``FWHM**2 = noise**2 + 2.3548**2 * F * eps * E`` with ``F = 0.114``, ``eps = 3.85 eV``;
    ``noise`` is chosen so that the FWHM at 5.9 keV (Mn K-alpha) equals ``fwhm_at_6keV``.

    Parameters
    ----------
    keV : float or array_like
        Photon energy (keV); negative energies get the noise FWHM.
    fwhm_at_6keV : float
        FWHM (keV) at 5.9 keV; at least the Fano limit (0.120 keV).

    Returns
    -------
    float or numpy.ndarray
        FWHM (keV).
    """
    noise2, slope = _fano_term(fwhm_at_6keV)
    e = np.maximum(np.asarray(keV, dtype=float), 0.0)
    out = np.sqrt(noise2 + slope * e)
    return float(out) if out.ndim == 0 else out


def noise_fwhm_keV(fwhm_at_6keV: float = 0.145) -> float:
    """Electronic noise FWHM (keV): the width of the zero peak.

    Parameters
    ----------
    fwhm_at_6keV : float
        FWHM (keV) at 5.9 keV.

    Returns
    -------
    float
        ``fwhm_keV(0, fwhm_at_6keV)`` (keV).
    """
    return float(fwhm_keV(0.0, fwhm_at_6keV))


# --------------------------------------------------------------------------- colours
_PALETTE: tuple[str, ...] = (
    "#1f77b4",  # blue
    "#d62728",  # red
    "#2ca02c",  # green
    "#ff7f0e",  # orange
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#17becf",  # cyan
    "#7f7f7f",  # grey
    "#a8a81a",  # olive
    "#393b79",  # navy
    "#637939",  # moss
    "#843c39",  # maroon
    "#7b4173",  # plum
    "#3182bd",  # steel blue
    "#e6550d",  # burnt orange
    "#31a354",  # leaf green
    "#756bb1",  # violet
    "#525252",  # charcoal
    "#a55194",  # magenta
    "#8c6d31",  # ochre
    "#17807e",  # teal
    "#b5404f",  # rose
    "#4a6fe3",  # cornflower
)
# elements common in artworks get distinct palette entries in this order
_COMMON: tuple[str, ...] = (
    "Fe", "Pb", "Cu", "Ca", "Zn", "Hg", "K", "Mn", "Ti", "Co", "Cr", "As",
    "Sr", "Ba", "Sn", "Au", "Ag", "S", "Cl", "Sb", "Ni", "Cd", "Se", "Bi",
)  # fmt: skip


def element_color(element: str | int) -> tuple[float, float, float]:
    """A stable, readable colour for an element (for plots and reports).

    The 24 elements most common in artworks (Fe, Pb, Cu, Ca, Zn, Hg, K, Mn, Ti...) get
    distinct entries of a fixed qualitative palette; other elements are indexed by atomic
    number. No colour is close to white.

    Parameters
    ----------
    element : str or int
        Chemical symbol or atomic number.

    Returns
    -------
    tuple of float
        ``(r, g, b)`` in 0..1.
    """
    symbol = normalize_element(element)
    if symbol in _COMMON:
        code = _PALETTE[_COMMON.index(symbol)]
    else:
        code = _PALETTE[xraydb.atomic_number(symbol) % len(_PALETTE)]
    return tuple(int(code[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


# --------------------------------------------------------------------------- spectra
def _as_axis(energies: np.ndarray | Sequence[float]) -> np.ndarray:
    e = np.asarray(energies, dtype=float)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise ParameterError(
            "energies must be a 1-D strictly increasing array of at least 2 finite values (keV)"
        )
    return e


def _channel_edges(e: np.ndarray) -> np.ndarray:
    edges = np.empty(e.size + 1)
    edges[1:-1] = 0.5 * (e[1:] + e[:-1])
    edges[0] = e[0] - 0.5 * (e[1] - e[0])
    edges[-1] = e[-1] + 0.5 * (e[-1] - e[-2])
    return edges


def gaussian_peaks(
    energies: np.ndarray | Sequence[float],
    centres_keV: np.ndarray | Sequence[float] | float,
    areas: np.ndarray | Sequence[float] | float,
    fwhm: np.ndarray | Sequence[float] | float,
    *,
    kind: str = "area",
) -> np.ndarray:
    """Spectrum of Gaussian peaks on an energy axis, integrated over each channel.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel centre energies (keV), strictly increasing.
    centres_keV : array_like
        ``(P,)`` peak centres (keV).
    areas : array_like
        ``(P,)`` or ``(..., P)`` peak areas (counts) -- or peak heights (counts per
        channel at the centre) when ``kind='height'``.
    fwhm : float or array_like
        Peak FWHM (keV), one for all or ``(P,)``.
    kind : {'area', 'height'}
        Meaning of ``areas``.

    Returns
    -------
    numpy.ndarray
        ``(..., C)`` counts per channel: each channel holds the integral of the peaks over
        its width, so the sum over channels equals the total area of the parts on the axis.
    """
    e = _as_axis(energies)
    c = np.atleast_1d(np.asarray(centres_keV, dtype=float))
    a = np.asarray(areas, dtype=float)
    if a.ndim == 0:
        a = np.full(c.shape, float(a))
    w = np.broadcast_to(np.asarray(fwhm, dtype=float), c.shape)
    if c.ndim != 1 or a.shape[-1] != c.size:
        raise ParameterError(f"centres_keV {c.shape} and areas {a.shape} must be (P,) and (..., P)")
    if not np.all(w > 0):
        raise ParameterError("fwhm must be > 0 keV")
    sigma = w / FWHM_PER_SIGMA
    if kind == "height":
        width = np.interp(c, e, np.gradient(e))
        a = a * sigma * math.sqrt(2 * math.pi) / width
    elif kind != "area":
        raise ParameterError(f"kind must be 'area' or 'height', got {kind!r}")
    if c.size == 0:
        return np.zeros(a.shape[:-1] + (e.size,))
    cdf = ndtr((_channel_edges(e)[:, None] - c[None, :]) / sigma[None, :])  # (C+1, P)
    profile = np.diff(cdf, axis=0)  # (C, P)
    return a @ profile.T


def line_spectrum(
    energies: np.ndarray | Sequence[float],
    centres_keV: np.ndarray | Sequence[float],
    areas: np.ndarray | Sequence[float],
    *,
    fwhm_at_6keV: float = 0.145,
    escape: bool = True,
    extra_fwhm_keV: np.ndarray | Sequence[float] | float = 0.0,
    detector: str = "Si",
) -> np.ndarray:
    """Detector response to a set of lines: Gaussians at the detector resolution + escapes.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    centres_keV, areas : array_like
        ``(P,)`` line energies (keV) and areas (counts).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    escape : bool
        Move :func:`escape_fraction` of each line's area to its escape peak.
    extra_fwhm_keV : float or array_like
        Extra width (keV FWHM, added in quadrature), e.g. Compton broadening.
    detector : {'Si', 'Ge'}
        Detector crystal for the escape peaks.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel; the total area (on and off the axis) is
        ``sum(areas)``.
    """
    c = np.atleast_1d(np.asarray(centres_keV, dtype=float))
    a = np.atleast_1d(np.asarray(areas, dtype=float))
    extra = np.broadcast_to(np.asarray(extra_fwhm_keV, dtype=float), c.shape)
    width = np.sqrt(fwhm_keV(c, fwhm_at_6keV) ** 2 + extra**2)
    if escape and c.size:
        f = np.atleast_1d(escape_fraction(c, detector))
        esc = f > 0
        ce = np.atleast_1d(escape_energy(c[esc], detector))
        we = np.sqrt(fwhm_keV(ce, fwhm_at_6keV) ** 2 + extra[esc] ** 2)
        a_main = a * (1 - f)
        c = np.concatenate([c, ce])
        a = np.concatenate([a_main, a[esc] * f[esc]])
        width = np.concatenate([width, we])
    return gaussian_peaks(energies, c, a, width)


def element_spectrum(
    element: str | int,
    energies: np.ndarray | Sequence[float],
    *,
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = 0.145,
    escape: bool = True,
    min_keV: float = 1.0,
    min_rel: float = 1e-3,
    detector: str = "Si",
) -> np.ndarray:
    """Detector response to one element: the template of maps fits and synthetic scans.

    All lines of :func:`element_lines` at their relative intensities, each a Gaussian at
    the detector resolution :func:`fwhm_keV`, plus the detector escape peaks
    (:func:`escape_fraction` of each line above the detector K edge).

    Parameters
    ----------
    element : str or int
        Chemical symbol or atomic number.
    energies : array_like
        ``(C,)`` channel energies (keV).
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    escape : bool
        Include escape peaks.
    min_keV, min_rel : float
        Passed to :func:`element_lines`.
    detector : {'Si', 'Ge'}
        Detector crystal.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel for a unit total emitted area: it sums to 1 when all
        lines lie on the axis (less when some fall off it; all zeros when none is excited).
    """
    lines = element_lines(element, tube_kv, min_keV=min_keV, min_rel=min_rel)
    e = _as_axis(energies)
    if not lines:
        return np.zeros(e.size)
    c = np.array([ln.energy_keV for ln in lines])
    a = np.array([ln.rel_intensity for ln in lines])
    return line_spectrum(
        e, c, a / a.sum(), fwhm_at_6keV=fwhm_at_6keV, escape=escape, detector=detector
    )


@functools.lru_cache(maxsize=32)
def _continuum_density(tube_kv: float, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Normalised continuum density (1/keV) on a grid 0.1..tube_kv (keV)."""
    grid = np.linspace(min(0.1, tube_kv / 2), tube_kv, n)
    shape = _continuum_shape(grid, tube_kv)
    return grid, shape / _integrate(grid, shape)


def _integrate(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def _continuum_shape(e: np.ndarray, tube_kv: float) -> np.ndarray:
    """Unnormalised scattered bremsstrahlung at energies ``e`` (keV).

    Kramers ``(E0 - E)/E`` x transmission of the tube and detector Be windows and the air
    path x thick-target scattering efficiency ``sigma_scatter / mu_total`` of a
    cellulose-like matrix (all attenuation data from xraydb).
    """
    out = np.zeros_like(e)
    ok = (e >= 0.1) & (e < tube_kv)
    if not np.any(ok):
        return out
    ev = e[ok] * 1e3
    with np.errstate(all="ignore"):
        be = xraydb.mu_elam("Be", ev) * xraydb.atomic_density("Be")
        air = xraydb.material_mu("air", ev)
        formula, rho = _MATRIX
        mu = xraydb.material_mu(formula, ev, density=rho)
        scat = xraydb.material_mu(formula, ev, density=rho, kind="coh") + xraydb.material_mu(
            formula, ev, density=rho, kind="incoh"
        )
        trans = np.exp(-be * (_TUBE_BE_UM + _DETECTOR_BE_UM) * 1e-4 - air * _AIR_CM)
        out[ok] = (tube_kv - e[ok]) / e[ok] * trans * scat / mu
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def continuum_spectrum(
    energies: np.ndarray | Sequence[float], *, tube_kv: float = 40.0
) -> np.ndarray:
    """Scattered bremsstrahlung continuum template (unit area over 0..tube_kv).

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    tube_kv : float
        Tube voltage (kV): the continuum ends there.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel for a unit total area.
    """
    e = _as_axis(energies)
    kv = _check_positive("tube_kv", tube_kv)
    grid, density = _continuum_density(float(kv))
    # integrate the density over each channel (cumulative integral on the fine grid)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    edges = np.clip(_channel_edges(e), grid[0], grid[-1])
    return np.diff(np.interp(edges, grid, cum))


def scatter_spectrum(
    energies: np.ndarray | Sequence[float],
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    fwhm_at_6keV: float = 0.145,
    l_weight: float = 0.2,
    compton_broadening: float = 0.0105,
    escape: bool = True,
) -> dict[str, np.ndarray]:
    """Scatter templates: Rayleigh and Compton peaks of the anode lines, and the continuum.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float
        Scattering angle tube -> sample -> detector (degrees).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    l_weight : float
        Factor applied to the anode's L and M lines relative to :func:`anode_lines` when the
        anode also has K lines (the tube window and air absorb them strongly).
    compton_broadening : float
        Doppler broadening of the Compton peak: extra FWHM (keV, in quadrature) =
        ``compton_broadening * E * sqrt(2 (1 - cos theta))`` (0.30 keV at Rh K-alpha, 90
        degrees). The Compton peak's low-energy tail is not modelled.
    escape : bool
        Include detector escape peaks of the scattered lines.

    Returns
    -------
    dict of str to numpy.ndarray
        ``'rayleigh'``, ``'compton'``, ``'continuum'``: ``(C,)`` counts per channel, each
        for a unit total area.
    """
    e = _as_axis(energies)
    lines = anode_lines(anode, tube_kv)
    theta = float(theta_deg)
    if not 0.0 <= theta <= 180.0:
        raise ParameterError(f"theta_deg must be in 0..180 degrees, got {theta_deg!r}")
    out: dict[str, np.ndarray] = {}
    if lines:
        c = np.array([ln.energy_keV for ln in lines])
        a = np.array([ln.rel_intensity for ln in lines])
        if any(ln.family == "K" for ln in lines):
            a = a * np.array([1.0 if ln.family == "K" else float(l_weight) for ln in lines])
        a = a / a.sum()
        out["rayleigh"] = line_spectrum(e, c, a, fwhm_at_6keV=fwhm_at_6keV, escape=escape)
        cc = np.asarray(compton_shift(c, theta))
        extra = compton_broadening * c * math.sqrt(2.0 * (1.0 - math.cos(math.radians(theta))))
        out["compton"] = line_spectrum(
            e, cc, a, fwhm_at_6keV=fwhm_at_6keV, escape=escape, extra_fwhm_keV=extra
        )
    else:
        out["rayleigh"] = np.zeros(e.size)
        out["compton"] = np.zeros(e.size)
    out["continuum"] = continuum_spectrum(e, tube_kv=tube_kv)
    return out


def zero_peak(energies: np.ndarray | Sequence[float], fwhm: float) -> np.ndarray:
    """The electronic-noise (zero-energy) peak: a unit-area Gaussian at 0 keV.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    fwhm : float
        Its FWHM (keV), usually :func:`noise_fwhm_keV`.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel; sums to the part of the unit area on the axis.
    """
    return gaussian_peaks(energies, [0.0], [1.0], _check_positive("fwhm", fwhm))
