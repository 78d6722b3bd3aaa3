"""Model selection of one spectrum (steps 4 and 5 of the notes).

Holds the instrument model of a spectrum (:func:`_instrument_components`), the tests of
an element (:class:`_Eval`), its columns and bounds in the fit (:class:`_ElementModel`,
:func:`_kbeta_bounds`, :func:`_family_bounds`) and the forward / backward selection with
the line evidence (:class:`_Selector`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg

from maxrf import physics
from maxrf.identify.constants import (
    _SQRT2PI,
    COMMON_ELEMENTS,
    DCHI2_POSSIBLE,
    DCHI2_PRESENT,
    FAMILY_SLACK,
    HARD_KEV,
    LIGHT_KBETA_MIN,
    LINE_FRACTION_PRESENT,
    LINE_RATIO_MIN,
    LINE_Z_MIN,
    MIN_FIT_KEV,
    MIN_OVERVOLTAGE,
    N_SUM_LINES,
    SHIFT_FWHM,
    SIGNIFICANCE_CAP,
    SOFT_KEV,
    STRONG_Z,
    SUBSHELL_SLACK,
    TAIL_MAX,
    VISIBLE_Z,
    Z_HALF,
    Z_POSSIBLE,
    Z_PRESENT,
)
from maxrf.identify.context import _gauss_profile, _SpectrumContext
from maxrf.identify.fitting import (
    _Atom,
    _combine,
    _Component,
    _element_atoms,
    _Fitter,
    _line_component,
    _Part,
    _sum_component,
)
from maxrf.identify.instrument import _anode_groups
from maxrf.identify.patterns import _pattern_peaks
from maxrf.identify.results import LineEvidence


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
    # the L lines' Compton partners (one column, ratios of the anode lines), where they
    # stand apart from their Rayleigh peaks (W L lines at 8-11 keV: a FWHM below them);
    # Rh / Mo L lines near 2.5 keV shift by ~20 eV, which the Rayleigh columns absorb
    top_l = max(lg, key=lambda g: g.rel_intensity) if lg else None
    if top_l is not None and (
        top_l.energy_keV - float(physics.compton_shift(top_l.energy_keV, ctx.theta))
        > 0.25 * float(physics.fwhm_keV(top_l.energy_keV, f6))
    ):
        comps.append(_line_component("compton L", "compton", e, lg, f6, label="Compton",
                                     shift_theta=ctx.theta, broadening=0.0105, element=ctx.anode))
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
    lo = LIGHT_KBETA_MIN if physics.table.atomic_number(el) <= 17 else 1.0 / hi
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
            # the per-channel envelope depends on the channel width (4096 channels hold
            # half the counts per channel of 2048): a line whose area stands clearly above
            # the local counting noise (STRONG_Z) is visible / seen whatever its height
            tall = height > noise_env[i] or exp_z >= STRONG_Z
            visible = bool(exp_z >= VISIBLE_Z and tall)
            seen = bool(
                z_loc >= LINE_Z_MIN
                and a_hat >= LINE_RATIO_MIN * area
                and (ctx.ys[i] > ctx.env[i] or z_loc >= STRONG_Z)
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
            if tall and p.rel > main_rel:
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
                LineEvidence(el, p.label, p.iupac, p.keV, observed, ctx.index, area, visible, seen, z_loc,
                             a_hat)
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
        """Sum-peak components of the :data:`N_SUM_LINES` strongest fitted element lines."""
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
        top = sorted(((a, n, kev) for n, (a, kev) in lines.items() if a > 0), reverse=True)[:N_SUM_LINES]
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
