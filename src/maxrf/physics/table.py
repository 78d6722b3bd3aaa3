"""The xraydb data the physics uses, as a table shipped with maxrf (``xray_table.json``).

xraydb answers from an SQLite database through SQLAlchemy, and its import brings in
SQLAlchemy and scipy.interpolate/optimize: ~0.9 s and ~45 MB in every process that needs
one line energy. The physics needs only a small part of it: element symbols, names and
masses, every element's emission lines, absorption edges and L Coster-Kronig
probabilities, and the Elam cross-section tables of the few elements whose attenuation
enters the templates (the detector crystals, the Be windows, air and the scattering
matrix). Those are copied here, made by :func:`build` from xraydb itself::

    python -m maxrf.physics.table      # rewrites src/maxrf/physics/xray_table.json

and tests/physics/test_xray_table.py checks that the table equals what xraydb returns
(and :func:`mu_elam`, :func:`material_mu` its values). Nothing here is typed by hand.
Cross-sections of an element or material not in the table are asked of xraydb.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

PATH = Path(__file__).with_name("xray_table.json")
#: highest atomic number in the table (as :func:`maxrf.physics.normalize_element`)
MAX_Z = 98
#: materials of xraydb's list whose attenuation the templates use (besides the matrix formula)
MATERIALS = ("air",)


class Line(NamedTuple):
    """An emission line as xraydb's ``XrayLine``: energy (eV), intensity per initial level."""

    energy: float
    intensity: float
    initial_level: str
    final_level: str


class Edge(NamedTuple):
    """An absorption edge as xraydb's ``XrayEdge``: energy (eV), fluorescence yield, jump."""

    energy: float
    fyield: float
    jump_ratio: float


@functools.cache
def _table() -> dict[str, Any]:
    with open(PATH) as f:
        return json.load(f)


@functools.cache
def _numbers() -> dict[str, int]:
    """Symbol, and English name in lower case, -> atomic number."""
    out = {}
    for sym, el in _table()["elements"].items():
        out[sym] = out[el["name"].lower()] = int(el["z"])
    return out


def atomic_number(element: str) -> int:
    """Atomic number of a symbol (``'Fe'``) or English name (any case, ``'iron'``), as
    ``xraydb.atomic_number``; ``ValueError`` for anything else."""
    if isinstance(element, str):
        z = _numbers().get(element) or _numbers().get(element.lower())
        if z is not None and (element in _table()["elements"] or element.lower() in _numbers()):
            return z
    raise ValueError(f"unknown element {element!r}")


@functools.cache
def _symbols() -> dict[int, str]:
    return {int(el["z"]): sym for sym, el in _table()["elements"].items()}


def atomic_symbol(z: int) -> str:
    """Symbol of atomic number ``z`` (1 .. :data:`MAX_Z`)."""
    try:
        return _symbols()[int(z)]
    except KeyError:
        raise ValueError(f"no element with atomic number {z!r}") from None


def atomic_name(element: str) -> str:
    """English name (lower case, as xraydb) of a symbol."""
    return str(_table()["elements"][element]["name"])


@functools.cache
def element_data(symbol: str) -> tuple[dict[str, Line], dict[str, Edge], dict[tuple[str, str], float]]:
    """Lines, edges and L Coster-Kronig probabilities (``total=True``) of an element, as
    ``xraydb.xray_lines``, ``xraydb.xray_edges`` and ``xraydb.ck_probability`` give them
    (the Coster-Kronig dict is empty when the element lacks one of L1, L2, L3)."""
    el = _table()["elements"][symbol]
    lines = {k: Line(*v) for k, v in el["lines"].items()}
    edges = {k: Edge(*v) for k, v in el["edges"].items()}
    ck = {tuple(k.split("-")): float(v) for k, v in el["ck"].items()}
    return lines, edges, ck  # type: ignore[return-value]


def _elam_spline(xin: np.ndarray, yin: np.ndarray, yspl: np.ndarray, x: np.ndarray) -> np.ndarray:
    """xraydb's ``utils.elam_spline``, vectorised: cubic spline through the tabulated
    ``(xin, yin)`` with second derivatives ``yspl``, between the last tabulated point below
    each ``x`` and the first above it (a tabulated ``x`` spans the two intervals around it,
    as there)."""
    lo = np.maximum(np.searchsorted(xin, x, side="left") - 1, 0)
    hi = np.minimum(np.searchsorted(xin, x, side="right"), xin.size - 1)
    diff = xin[hi] - xin[lo]
    if np.any(diff <= 0):
        raise ValueError("x must be strictly increasing")
    a = (xin[hi] - x) / diff
    b = (x - xin[lo]) / diff
    return a * yin[lo] + b * yin[hi] + (diff * diff / 6) * ((a * a - 1) * a * yspl[lo]
                                                            + (b * b - 1) * b * yspl[hi])


@functools.cache
def _elam(symbol: str) -> dict[str, np.ndarray] | None:
    tab = _table()["elam"].get(symbol)
    return None if tab is None else {k: np.asarray(v, dtype=float) for k, v in tab.items()}


def has_cross_sections(element: str) -> bool:
    """True when the Elam tables of ``element`` are in the table."""
    return element in _table()["elam"]


def mu_elam(element: str, energies_eV: Any, kind: str = "total") -> np.ndarray:
    """Mass attenuation coefficient (cm2/g) of an element, as ``xraydb.mu_elam``: Elam's
    photo-absorption, coherent and incoherent cross-sections (``kind`` one of them or
    ``'total'``), energies clipped to 100 eV .. 800 keV. Elements outside the table are
    asked of xraydb."""
    tab = _elam(element)
    if tab is None:
        import xraydb

        return np.asarray(xraydb.mu_elam(element, energies_eV, kind=kind), dtype=float)
    x = np.log(np.clip(np.atleast_1d(np.asarray(energies_eV, dtype=float)), 100.0, 8e5))
    kinds = ("photo", "coh", "incoh") if kind == "total" else (kind,)
    out = np.zeros_like(x)
    for k in kinds:
        if k not in ("photo", "coh", "incoh"):
            raise ValueError(f"unknown cross section kind={kind}")
        out += np.exp(_elam_spline(tab[k + "_log_energy"], tab[k], tab[k + "_spline"], x))
    return out


def form_factor(element: str, q: Any) -> np.ndarray:
    """Elastic (Rayleigh) atomic form factor ``f0(q)`` (electrons), as ``xraydb.f0``:
    Waasmaier and Kirfel's fit, ``q = sin(theta / 2) / lambda`` (1/Angstrom) for a
    scattering angle ``theta``. Elements outside the table are asked of xraydb."""
    row = _table()["f0"].get(element)
    if row is None:
        import xraydb

        return np.asarray(xraydb.f0(element, q), dtype=float)
    offset, scales, exponents = row
    q2 = np.square(np.asarray(q, dtype=float))
    return offset + sum(s * np.exp(-e * q2) for s, e in zip(scales, exponents))


def composition(formula: str) -> dict[str, float]:
    """Atoms per formula unit of a material of the table or a chemical formula."""
    mat = _table()["materials"].get(formula)
    if mat is not None:
        return dict(mat["composition"])
    from xraydb.chemparser import chemparse

    return dict(chemparse(formula))


def atomic_density(element: str) -> float:
    """Density (g/cm3) of the element as xraydb lists it."""
    return float(_table()["elements"][element]["density"])


def material_mu(name: str, energies_eV: Any, density: float | None = None, kind: str = "total"
                ) -> np.ndarray:
    """Attenuation (1/cm) of a material, as ``xraydb.material_mu``: a material of the table
    (:data:`MATERIALS`) or a formula whose composition the table holds, else xraydb's."""
    mat = _table()["materials"].get(name)
    if mat is None or not all(has_cross_sections(el) for el in mat["composition"]):
        import xraydb

        return np.asarray(xraydb.material_mu(name, energies_eV, density=density, kind=kind), dtype=float)
    rho = mat["density"] if density is None else density
    if rho is None:
        raise ValueError(f"material_mu(): must give density for {name!r}")
    mass_tot, mu = 0.0, 0.0
    for el, frac in mat["composition"].items():
        mass = frac * _table()["elements"][el]["mass"]
        mu = mu + mass * mu_elam(el, energies_eV, kind=kind)
        mass_tot += mass
    return rho * mu / mass_tot


# --------------------------------------------------------------------------- generation
def build() -> dict[str, Any]:
    """The table, from xraydb (what ``python -m maxrf.physics.table`` writes)."""
    import json as _json

    import xraydb
    from xraydb.chemparser import chemparse

    from maxrf.physics.constants import _MATRIX, DETECTORS

    xdb = xraydb.get_xraydb()
    elements = {}
    for z in range(1, MAX_Z + 1):
        sym = str(xraydb.atomic_symbol(z))
        lines = {k: [float(v.energy), float(v.intensity), str(v.initial_level), str(v.final_level)]
                 for k, v in xraydb.xray_lines(sym).items()}
        edges = {k: [float(v.energy), float(v.fyield), float(v.jump_ratio)]
                 for k, v in xraydb.xray_edges(sym).items()}
        ck = {}
        if all(k in edges for k in ("L1", "L2", "L3")):
            for a, b in (("L1", "L2"), ("L1", "L3"), ("L2", "L3")):
                ck[f"{a}-{b}"] = float(xraydb.ck_probability(sym, a, b, total=True))
        elements[sym] = {"z": z, "name": str(xraydb.atomic_name(z)), "mass": float(xraydb.atomic_mass(sym)),
                         "density": float(xraydb.atomic_density(sym)), "lines": lines, "edges": edges,
                         "ck": ck}
    materials = {}
    for name in MATERIALS:
        formula, density = xraydb.get_material(name)
        materials[name] = {"density": float(density), "composition": dict(chemparse(formula))}
    formula, _ = _MATRIX
    materials[formula] = {"density": None, "composition": dict(chemparse(formula))}
    needed = {"Be", *DETECTORS} | {el for m in materials.values() for el in m["composition"]}
    elam = {}
    for sym in sorted(needed):
        rows = {}
        for kind, table, cols in (
            ("photo", "photoabsorption", ("log_photoabsorption", "log_photoabsorption_spline")),
            ("coh", "scattering", ("log_coherent_scatter", "log_coherent_scatter_spline")),
            ("incoh", "scattering", ("log_incoherent_scatter", "log_incoherent_scatter_spline")),
        ):
            row = xdb.get_cache(table, column="element", value=sym)[0]
            rows[kind + "_log_energy"] = _json.loads(row.log_energy)
            rows[kind], rows[kind + "_spline"] = (_json.loads(getattr(row, c)) for c in cols)
        elam[sym] = rows
    f0 = {}
    for row in xdb.get_cache("Waasmaier"):
        if row.ion in needed:  # neutral atoms only: the ions have rows of their own
            f0[row.ion] = [float(row.offset), _json.loads(row.scale), _json.loads(row.exponents)]
    return {"xraydb": str(xraydb.__version__), "elements": elements, "materials": materials,
            "elam": elam, "f0": f0}


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), separators=(",", ":")) + "\n")
    print(f"wrote {PATH} ({PATH.stat().st_size // 1024} KiB)")
