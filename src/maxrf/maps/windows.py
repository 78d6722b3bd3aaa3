"""Line windows of the window method, and plain channel-window sums per pixel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.maps.model import _fit_range
from maxrf.maps.slices import _nearest_index


def _line_groups(element: str, tube_kv: float, min_keV: float) -> list[dict[str, Any]]:
    """Line groups (Ka, Kb, La, Lb, Lg, Ma...) of an element: strongest line, total rel."""
    groups: dict[str, list[physics.Line]] = {}
    for ln in physics.element_lines(element, tube_kv, min_keV=min_keV):
        key = ln.siegbahn[:2]
        groups.setdefault(key, []).append(ln)
    out = []
    for key, lines in groups.items():
        main = max(lines, key=lambda ln: ln.rel_intensity)
        out.append({"line": key, "keV": main.energy_keV, "rel": sum(ln.rel_intensity for ln in lines),
                    "lines": lines})
    out.sort(key=lambda g: -g["rel"])
    return out


def window_lines(
    elements: Sequence[str],
    energies: Any,
    *,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    energy_range: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """The integration window of each element for ``method='window'`` (rule: module notes).

    Parameters
    ----------
    elements : sequence of str
        Elements to map (each one's windows avoid the lines of the others).
    energies : array_like
        ``(C,)`` channel energies (keV).
    fwhm_at_6keV, anode, tube_kv, theta_deg, energy_range
        Detector resolution (keV), instrument, fitted range as in :func:`fit_model`.

    Returns
    -------
    list of dict
        Per element: ``element``, ``line`` (group, e.g. ``'Kb'``), ``keV`` (centre),
        ``keV_range`` [lo, hi], ``channels`` [left, right] (inclusive), ``free`` (bool),
        ``interference`` (relative).
    """
    e = np.asarray(energies, dtype=float)
    els = list(dict.fromkeys(physics.normalize_element(el) for el in elements))
    lo, hi = _fit_range(e, energy_range, tube_kv)
    e_lo, e_hi = e[lo], e[hi - 1]
    others_all: dict[str, list[tuple[float, float]]] = {}
    for el in els:
        lines = physics.element_lines(el, tube_kv, min_keV=0.0)
        others_all[el] = [(ln.energy_keV, ln.rel_intensity) for ln in lines]
    scatter = []
    for ln in physics.anode_lines(anode, tube_kv):
        scatter.append((ln.energy_keV, ln.rel_intensity))
        scatter.append((float(physics.compton_shift(ln.energy_keV, theta_deg)), ln.rel_intensity))
    out = []
    for el in els:
        groups = [g for g in _line_groups(el, tube_kv, 0.0) if e_lo <= g["keV"] <= e_hi]
        if not groups:
            raise ParameterError(f"element {el} has no line in the range {e_lo:.2f}..{e_hi:.2f} keV")
        top = groups[0]["rel"]
        interferers = [ln for other in els if other != el for ln in others_all[other]] + scatter
        best = None
        for g in groups:
            fw = float(physics.fwhm_keV(g["keV"], fwhm_at_6keV))
            near = [(ek, rel) for ek, rel in interferers if rel >= 0.05 and abs(ek - g["keV"]) < 2 * fw]
            sigma = fw / physics.FWHM_PER_SIGMA
            a, b = g["keV"] - fw, g["keV"] + fw
            inter = sum(rel * (ndtr((b - ek) / sigma) - ndtr((a - ek) / sigma))
                        for ek, rel in interferers)
            own = sum(ln.rel_intensity
                      * (ndtr((b - ln.energy_keV) / sigma) - ndtr((a - ln.energy_keV) / sigma))
                      for ln in g["lines"])
            cand = {"group": g, "free": not near, "interference": float(inter / max(own, 1e-12)),
                    "fwhm": fw}
            if cand["free"] and g["rel"] >= 0.1 * top:
                best = cand
                break
            if best is None or cand["interference"] < best["interference"]:
                best = cand
        g = best["group"]
        fw = best["fwhm"]
        si = int(_nearest_index(e, np.array([g["keV"] - fw]))[0])
        sk = int(_nearest_index(e, np.array([g["keV"] + fw]))[0])
        if sk <= si:
            sk = min(e.size - 1, si + 1)
        out.append({"element": el, "line": g["line"], "keV": float(g["keV"]),
                    "keV_range": [float(e[si]), float(e[sk])], "channels": [si, sk],
                    "free": bool(best["free"]), "interference": best["interference"]})
    return out
