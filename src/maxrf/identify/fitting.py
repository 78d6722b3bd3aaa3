"""Fit templates and the weighted non-negative least squares (steps 2 and 3 of the notes).

Holds :func:`candidate_elements`, the fit's building blocks (:class:`_Part`,
:class:`_Component`, :class:`_Atom`), the element, instrument-line and sum-peak templates
(:func:`_element_atoms`, :func:`_combine`, :func:`_line_component`, :func:`_sum_component`,
:func:`_tail_profile`), and the solver (:func:`_nnls_gram`, :class:`_Fitter`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg, ndimage, sparse, special

from maxrf import physics
from maxrf.identify.constants import (
    CANDIDATE_WINDOW_FWHM,
    DYNAMIC_RANGE,
    EXCLUDED,
    MIN_FIT_KEV,
    SYSTEMATIC,
    WING_ERROR,
)
from maxrf.identify.instrument import _compton_extra_fwhm
from maxrf.identify.patterns import (
    PatternPeak,
    _element_pattern,
    _escape_energy,
    _escape_fraction,
    _merge_lines,
    _pattern_peaks,
)
from maxrf.solve import nnls_gram


@functools.lru_cache(maxsize=1)
def _symbols() -> tuple[str, ...]:
    """Symbols of Z = 11..92."""
    return tuple(physics.table.atomic_symbol(z) for z in range(11, 93))


def candidate_elements(
    peaks_keV: Sequence[float],
    *,
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
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
    """Non-negative least squares from the normal equations: ``min x'Gx - 2h'x, x >= 0``
    (:func:`maxrf.solve.nnls_gram`)."""
    return nnls_gram(G, h)[0]


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
