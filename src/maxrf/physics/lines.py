"""Elements and their emission lines (xraydb), anode lines, element colours."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from maxrf.errors import ParameterError
from maxrf.physics import table
from maxrf.physics.constants import ANODES, PHOTO_EXPONENT, PRIMARY_FILTER_ELEMENTS


def normalize_element(element: str | int) -> str:
    """Canonical chemical symbol of an element (cached: xraydb's look-up is a database
    query, and the line patterns ask it thousands of times).

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
        return _symbol(element)
    except TypeError:  # unhashable: not an element either
        raise ParameterError(f"unknown element {element!r}") from None


@functools.lru_cache(maxsize=1024, typed=True)  # typed: True is not the element 1
def _symbol(element: str | int) -> str:
    try:
        if isinstance(element, str):
            element = element.strip()
            z = table.atomic_number(element.capitalize())
        elif isinstance(element, (int, np.integer)) and not isinstance(element, bool):
            z = int(element)
        else:
            raise ValueError
        if not 1 <= z <= 98:
            raise ValueError
        return table.atomic_symbol(z)
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
    """xraydb lines, edges and L Coster-Kronig probabilities of one element (cached;
    from :mod:`maxrf.physics.table`, xraydb's own values)."""
    lines, edges, ck = table.element_data(symbol)
    return dict(lines), dict(edges), dict(ck)


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


def k_edge_keV(element: str | int) -> float:
    """K absorption edge (keV) of ``element`` (xraydb)."""
    return float(_element_data(_symbol(element))[1]["K"].energy) / 1000.0


def filter_edge_below(keV: float, reach_keV: float = 1.0) -> tuple[str, float] | None:
    """The primary-filter element (:data:`~maxrf.physics.constants.PRIMARY_FILTER_ELEMENTS`)
    whose K edge lies closest below ``keV`` within ``reach_keV``, and that edge (keV); None
    when there is none.

    A filter absorbs most strongly just above its K edge: 25 um of Ti leaves 5e-4 of a Cr
    tube's K-alpha (5.41 keV, edge 4.97), 25 um of Ni 1e-4 of a W tube's L-alpha (8.40 keV,
    edge 8.33), 50 um of Cu 3e-4 of W L-beta (9.67 keV, edge 8.98), while the photons just
    below the edge pass."""
    edges = ((el, k_edge_keV(el)) for el in PRIMARY_FILTER_ELEMENTS)
    return max(((el, e) for el, e in edges if keV - reach_keV <= e < keV), key=lambda x: x[1], default=None)


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
        code = _PALETTE[table.atomic_number(symbol) % len(_PALETTE)]
    return tuple(int(code[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
