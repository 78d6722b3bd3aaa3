"""Building the fit design: element, scatter, pile-up and continuum templates, fit range,
resolution and scattering-angle searches on the mean spectrum."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.maps.fit import FitModel
from maxrf.maps.slices import _as_spectrum_pair


def _legendre_basis(n: int, order: int) -> np.ndarray:
    t = np.linspace(-1.0, 1.0, n)
    return np.polynomial.legendre.legvander(t, order).T  # (order + 1, n)


def _pileup_template(energies: np.ndarray, elements: Sequence[str], amps: Sequence[float],
                     tube_kv: float, fwhm6: float, n_max: int = 6) -> np.ndarray | None:
    """Unit-area sum-peak template of the main lines of the strongest elements."""
    amps = np.maximum(np.asarray(amps, dtype=float), 0.0)
    if not len(elements) or not np.any(amps > 0):
        return None
    order = np.argsort(-amps)[:n_max]
    main = []
    for i in order:
        if amps[i] <= 0:
            continue
        lines = physics.element_lines(elements[i], tube_kv)
        rel = np.array([ln.rel_intensity for ln in lines])
        j = int(np.argmax(rel))
        main.append((lines[j].energy_keV, amps[i] * rel[j] / rel.sum()))
    centres, weights = [], []
    for p in range(len(main)):
        for q in range(p, len(main)):
            centres.append(main[p][0] + main[q][0])
            weights.append((1.0 if p == q else 2.0) * main[p][1] * main[q][1])
    c = np.array(centres)
    t = physics.gaussian_peaks(energies, c, np.array(weights), physics.fwhm_keV(c, fwhm6))
    total = t.sum()
    return t / total if total > 0 else None


class _Templates:
    """Templates on one energy axis, cached by resolution and angle (for the 1-D searches)."""

    def __init__(self, energies: np.ndarray, lo: int, hi: int, anode: str, tube_kv: float,
                 continuum_order: int):
        self.e, self.lo, self.hi = energies, lo, hi
        self.fit_e = energies[lo:hi]  # templates are computed on the fitted channels only
        self.anode, self.tube_kv = anode, tube_kv
        self.order = int(continuum_order)
        self._elements: dict[tuple[str, float], np.ndarray] = {}
        self._scatter: dict[tuple[float, float], dict[str, np.ndarray]] = {}
        self.continuum = physics.continuum_spectrum(self.fit_e, tube_kv=tube_kv)
        self.basis = _legendre_basis(hi - lo, self.order)

    def element(self, el: str, fwhm6: float) -> np.ndarray:
        key = (el, float(fwhm6))
        if key not in self._elements:
            self._elements[key] = physics.element_spectrum(
                el, self.fit_e, tube_kv=self.tube_kv, fwhm_at_6keV=fwhm6)
        return self._elements[key]

    def scatter(self, fwhm6: float, theta: float) -> dict[str, np.ndarray]:
        key = (float(fwhm6), float(theta))
        if key not in self._scatter:
            sc = physics.scatter_spectrum(self.fit_e, anode=self.anode, tube_kv=self.tube_kv,
                                          theta_deg=theta, fwhm_at_6keV=fwhm6)
            sc["zero"] = physics.zero_peak(self.fit_e, physics.noise_fwhm_keV(fwhm6))
            self._scatter[key] = sc
        return self._scatter[key]

    def design(self, elements: Sequence[str], fwhm6: float, theta: float,
               pileup: np.ndarray | None = None) -> tuple[list[str], list[str], np.ndarray]:
        """(names, kinds, templates (m, hi - lo)) of the fit components; ``pileup`` is
        given on the full axis."""
        lo, hi, e = self.lo, self.hi, self.e
        names: list[str] = []
        kinds: list[str] = []
        rows: list[np.ndarray] = []
        for el in elements:
            t = self.element(el, fwhm6)
            if t.sum() < 1e-3:
                raise ParameterError(
                    f"element {el} has no lines excited at {self.tube_kv} kV in the fitted "
                    f"range {e[lo]:.2f}..{e[hi - 1]:.2f} keV"
                )
            names.append(el)
            kinds.append("element")
            rows.append(t)
        sc = self.scatter(fwhm6, theta)
        for name in ("rayleigh", "compton", "zero"):
            if sc[name].sum() > 1e-4:
                names.append(name)
                kinds.append("scatter")
                rows.append(sc[name])
        if pileup is not None and pileup[lo:hi].sum() > 1e-3:
            names.append("pileup")
            kinds.append("pileup")
            rows.append(pileup[lo:hi])
        cont = self.continuum
        if cont.sum() <= 1e-6:  # no continuum in range (tube_kv below it): plain polynomials
            cont = np.ones(hi - lo)
        for j in range(self.order + 1):
            names.append(f"continuum{j}")
            kinds.append("continuum")
            rows.append(cont * self.basis[j])
        return names, kinds, np.array(rows)

    def ssr(self, y: np.ndarray, weights: np.ndarray, elements: Sequence[str], fwhm6: float,
            theta: float) -> float:
        """Weighted residual of the unconstrained fit of the spectrum ``y`` (full axis)."""
        try:
            _, _, t = self.design(elements, fwhm6, theta)
        except ParameterError:
            return math.inf
        amps, ssr = _wls(t, y[self.lo : self.hi], weights)
        return ssr


def _wls(t: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares of one spectrum on templates ``t`` (m, n) via the normal
    equations of the column-scaled design: (amplitudes (m,), weighted residual)."""
    sw = np.sqrt(weights)
    a = t * sw[None, :]
    yw = y * sw
    norms = np.sqrt(np.sum(a * a, axis=1))
    norms[norms == 0] = 1.0
    a /= norms[:, None]
    amps = np.linalg.pinv(a @ a.T, rcond=1e-12, hermitian=True) @ (a @ yw)
    r = yw - a.T @ amps
    return amps / norms, float(r @ r)


def _top_keV(elements: Sequence[str], anode: str, tube_kv: float) -> float:
    """Upper end (keV) of the default fit range: the highest line (>= 1 % of its element's
    strongest) of the elements and the anode, plus 1.5 keV."""
    lines = [ln.energy_keV for el in elements for ln in physics.element_lines(el, tube_kv)
             if ln.rel_intensity >= 0.01]
    lines += [ln.energy_keV for ln in physics.anode_lines(anode, tube_kv) if ln.rel_intensity >= 0.01]
    return max(lines) + 1.5 if lines else tube_kv


def _fit_range(energies: np.ndarray, energy_range: Sequence[float] | None, tube_kv: float
               ) -> tuple[int, int]:
    if energy_range is None:
        lo_keV, hi_keV = 1.0, tube_kv
    else:
        try:
            lo_keV, hi_keV = (float(v) for v in energy_range)
        except (TypeError, ValueError):
            raise ParameterError(
                f"energy_range must be (min_keV, max_keV), got {energy_range!r}"
            ) from None
    lo = int(np.searchsorted(energies, lo_keV))
    hi = int(np.searchsorted(energies, hi_keV, side="right"))
    if hi - lo < 16:
        raise ParameterError(
            f"energy range {lo_keV}..{hi_keV} keV holds {max(hi - lo, 0)} channels of the axis "
            f"{energies[0]:.2f}..{energies[-1]:.2f} keV (need at least 16)"
        )
    return lo, hi


def _golden(f, lo: float, hi: float, iters: int = 18) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def estimate_fwhm(
    energies: Any,
    spectrum: Any,
    elements: Sequence[str] | None = None,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    energy_range: Sequence[float] | None = None,
    n_spectra: float = 1.0,
) -> float:
    """Detector resolution (FWHM at 5.9 keV, keV) estimated from a (mean) spectrum.

    First :func:`maxrf.physics.estimate_fwhm` (Gaussian fits of the strongest peaks, Fano
    law); with ``elements``, refined by a golden-section search of the weighted residual
    of the template fit of the spectrum (the width that suits the fit's own templates).

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    spectrum : array_like
        ``(C,)`` spectrum (counts), e.g. the mean (sum) spectrum.
    elements : sequence of str, optional
        Elements present, for the refinement.
    anode, tube_kv, theta_deg, energy_range, n_spectra
        As in :func:`fit_model` (``theta_deg`` is not used by the first estimate).

    Returns
    -------
    float
        FWHM (keV) at 5.9 keV; :data:`maxrf.physics.DEFAULT_FWHM_KEV` when no peak can be
        measured.
    """
    e, y = _as_spectrum_pair(energies, spectrum)
    f0 = (physics.estimate_fwhm(e, y * float(n_spectra), anode=anode, tube_kv=tube_kv)
          or physics.DEFAULT_FWHM_KEV)
    if not elements:
        return f0
    lo, hi = _fit_range(e, energy_range, tube_kv)
    tc = _Templates(e, lo, hi, physics.normalize_element(anode), float(tube_kv), 3)
    els = [physics.normalize_element(el) for el in elements]
    return _refine_fwhm(tc, y, els, f0, theta_deg)


def _search_weights(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return 1.0 / np.maximum(y[lo:hi], max(1e-6, 1e-4 * float(np.max(y))))


def _refine_fwhm(tc: _Templates, y: np.ndarray, els: Sequence[str], f0: float, theta: float
                 ) -> float:
    limit = physics.MIN_FWHM_KEV * 1.01
    w = _search_weights(y, tc.lo, tc.hi)
    return float(_golden(lambda v: tc.ssr(y, w, els, v, theta), max(limit, 0.75 * f0), 1.3 * f0,
                         iters=10))


def _resolution_and_angle(tc: _Templates, y: np.ndarray, els: Sequence[str],
                          fwhm_at_6keV: float | None, theta_deg: float | None,
                          n_spectra: float) -> tuple[float, float]:
    """(FWHM at 5.9 keV, angle): the given ones, else estimated, then refined together."""
    theta = 90.0 if theta_deg is None else float(theta_deg)
    if fwhm_at_6keV is None:
        fwhm6 = estimate_fwhm(tc.e, y, None, anode=tc.anode, tube_kv=tc.tube_kv,
                              n_spectra=n_spectra)
    else:
        fwhm6 = float(fwhm_at_6keV)
        physics.fwhm_keV(5.9, fwhm6)  # validates
    if theta_deg is None:
        theta = _initial_theta(tc, y, els, fwhm6, n_spectra)
    if fwhm_at_6keV is None:
        fwhm6 = _refine_fwhm(tc, y, els, fwhm6, theta)
        if theta_deg is None:
            theta = _estimate_theta(tc, y, els, fwhm6, around=theta)
    return fwhm6, theta


def _initial_theta(tc: _Templates, y: np.ndarray, els: Sequence[str], fwhm6: float,
                   n_spectra: float) -> float:
    """Scattering angle (degrees) from the Compton peak
    (:func:`maxrf.physics.estimate_scatter_angle`); when no Compton peak stands out there,
    the angle whose templates fit the whole spectrum best."""
    theta = physics.estimate_scatter_angle(tc.e, y * float(n_spectra), anode=tc.anode,
                                           tube_kv=tc.tube_kv, fwhm_at_6keV=fwhm6)
    return float(theta) if theta is not None else _estimate_theta(tc, y, els, fwhm6)


def _estimate_theta(tc: _Templates, y: np.ndarray, els: Sequence[str], fwhm6: float,
                    around: float | None = None) -> float:
    """Scattering angle (degrees) minimising the residual of the mean-spectrum fit."""
    w = _search_weights(y, tc.lo, tc.hi)

    def f(t: float) -> float:
        return tc.ssr(y, w, els, fwhm6, t)

    if around is not None:  # local refinement
        return float(_golden(f, max(0.0, around - 3.0), min(180.0, around + 3.0), iters=6))
    grid = np.arange(20.0, 170.1, 15.0)
    best = float(grid[int(np.argmin([f(t) for t in grid]))])
    return float(_golden(f, max(0.0, best - 15.0), min(180.0, best + 15.0), iters=9))


def fit_model(
    energies: Any,
    elements: Sequence[str],
    mean_spectrum: Any,
    *,
    fwhm_at_6keV: float | None = None,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float | None = None,
    energy_range: Sequence[float] | None = None,
    continuum_order: int = 3,
    pileup: bool = True,
    n_spectra: float = 1.0,
) -> FitModel:
    """Build the fixed design of the per-pixel element fit (see the module notes).

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    elements : sequence of str
        Elements to map.
    mean_spectrum : array_like
        ``(C,)`` mean spectrum (counts per pixel): channel weights, resolution and
        scattering-angle estimates, pile-up composition.
    fwhm_at_6keV : float, optional
        Detector FWHM at 5.9 keV (keV); estimated by :func:`estimate_fwhm` when omitted.
    anode : str
        Tube anode (Rayleigh / Compton templates).
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float, optional
        Scattering angle (degrees); estimated from the mean spectrum when omitted.
    energy_range : (float, float), optional
        Fitted energies (keV); default from 1 keV to 1.5 keV above the highest line (of at
        least 1 % relative intensity) of the elements and the anode, at most ``tube_kv``.
    continuum_order : int
        Highest Legendre order multiplying the continuum template.
    pileup : bool
        Include a pile-up (sum peak) template.
    n_spectra : float
        Number of pixel spectra averaged in ``mean_spectrum``: the estimates of the
        resolution and the angle weigh the peaks by the counting statistics of their sum.

    Returns
    -------
    FitModel
    """
    e, y = _as_spectrum_pair(energies, mean_spectrum)
    if isinstance(elements, str):
        elements = [elements]
    els = list(dict.fromkeys(physics.normalize_element(el) for el in elements))
    if not els:
        raise ParameterError("no elements to map")
    anode = physics.normalize_element(anode)
    tube_kv = float(tube_kv)
    if not int(continuum_order) >= 0:
        raise ParameterError(f"continuum_order must be >= 0, got {continuum_order!r}")
    if energy_range is None:
        energy_range = (1.0, min(tube_kv, _top_keV(els, anode, tube_kv)))
    lo, hi = _fit_range(e, energy_range, tube_kv)
    tc = _Templates(e, lo, hi, anode, tube_kv, int(continuum_order))
    fwhm6, theta = _resolution_and_angle(tc, y, els, fwhm_at_6keV, theta_deg, n_spectra)
    weights = 1.0 / np.maximum(y[lo:hi], 1.0)
    pile = None
    if pileup:
        _, _, t = tc.design(els, fwhm6, theta)
        amps, _ = _wls(t, y[lo:hi], weights)
        pile = _pileup_template(e, els, amps[: len(els)], tube_kv, fwhm6)
    names, kinds, t = tc.design(els, fwhm6, theta, pile)
    constrained = np.array([k != "continuum" for k in kinds])
    return FitModel(e, lo, hi, names, kinds, t, weights, constrained, els, float(fwhm6),
                    float(theta), anode, tube_kv)
