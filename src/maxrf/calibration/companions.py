"""Companion lines as evidence of an element: a main line (K-alpha, L-alpha) on a peak
whose height makes its companions (K-beta, L-beta) clear peaks is not that element where
nothing shows at their places.

The expectation is the peak's height over the noise at the companion's place, not the
main line's significance: a main line on a strong neighbour's flank has a small
significance and its companion may lie on no background at all. Used by the
``companion lines`` check (:func:`maxrf.calibration.quality.independent_checks`) and to
keep such elements' lines from the trace lines a blend's fit is offered
(:func:`silent_elements`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maxrf import physics
from maxrf.calibration.explain import bump_not_line, compton_side, sum_energies
from maxrf.calibration.match import _fwhm_at
from maxrf.calibration.observe import _Obs, _Spec
from maxrf.calibration.references import _Ref

#: evidence (sigma) a companion line is due from its main line's peak height, from which
#: nothing at its place (under :data:`SILENT_SIGMA`) refutes the main line's identity
COMPANION_DUE_SIGMA = 60.0
SILENT_SIGMA = 4.0


def silent_companions(
    spec: _Spec, gain: float, offset: float, refs: Sequence[_Ref],
    entries: Sequence[tuple[_Ref, float, float, bool]], obs: Sequence[_Obs],
) -> list[tuple[str, float]]:
    """The companion lines (K-beta, L-beta...; at least a tenth of their family) of every
    matched element main line, used in the fit or left out, that show nothing where the
    main line's peak height makes them a clear peak: their names and the evidence (sigma)
    each was due at. The expectation is the peak's height
    times the line ratio over the noise at the companion's place, not the main line's
    significance: a main line on a strong neighbour's flank has a small significance and
    its companion may lie on no background at all (held-out 1170048: a W L-alpha Rayleigh
    line read as Zn K-alpha, 8 sigma on its blend's flank, Zn K-beta due at 75 sigma on
    an empty continuum behind a Cu filter, nothing there). Matrix absorption between the
    lines (Zn K-beta in brass) takes a few times off a companion, not all of it."""
    out: list[tuple[str, float]] = []
    if not obs:
        return out
    done = {e[0].name for e in entries}
    for ref, channel, *_ in entries:
        if ref.kind != "element" or not ref.fprimary:
            continue
        peak = min(obs, key=lambda q: abs(q.channel - channel))
        for r in refs:
            if r.element != ref.element or r.family != ref.family or r.fprimary or r.name in done:
                continue
            rel = r.strength / max(ref.strength, 1e-9)
            c = (r.keV - offset) / gain
            if rel < 0.1 or not (3 <= c <= spec.y.size - 4):
                continue
            fw = float(_fwhm_at(r.keV))
            due = peak.height * rel * min(1.0, peak.fwhm * gain / fw) / float(spec.noise[int(round(c))])
            got = spec.line_evidence(c, max(1.0, 0.5 * fw / gain))
            if due >= COMPANION_DUE_SIGMA and np.isfinite(got) and got < SILENT_SIGMA:
                out.append((r.name, float(due)))
    return out


def silent_elements(
    spec: _Spec, gain: float, offset: float, refs: Sequence[_Ref], present: set[str | None],
    obs: Sequence[_Obs],
) -> set[str]:
    """Elements not in ``present`` whose main line (K-alpha, L-alpha) sits on an observed peak
    (within half a detector FWHM) whose height makes a companion a clear peak where
    nothing shows (:func:`silent_companions`): not that element. A trace line offered to
    a blend's fit (:func:`maxrf.calibration.references.trace_groups`) takes a peak only
    where the rest of its family allows it: on a wrong axis that read a W L-alpha blend's
    Compton maximum as its Rayleigh line, a Zn trace took the real Rayleigh line (held-out
    1170048, Zn K-beta due at 75 sigma, nothing there). A trace on a flank, without a
    peak of its own, is not judged."""
    out: set[str] = set()
    for r in refs:
        if r.kind != "element" or not r.fprimary or r.element in present or r.element in out:
            continue
        half = 0.5 * float(_fwhm_at(r.keV))
        peak = [o for o in obs if abs(offset + gain * o.channel - r.keV) <= half]
        entry = [(r, peak[0].channel, peak[0].err, False)] if peak else []
        if entry and silent_companions(spec, gain, offset, refs, entry, obs):
            out.add(str(r.element))
    return out


#: largest K-beta/K-alpha peak-area ratio, in units of the tabulated line ratio, a sample
#: element shows: one shell emits both lines, so a primary filter keeps their ratio, and
#: absorption on the way out takes K-alpha more than K-beta only as a layer that leaves a
#: percent of K-alpha does (3 x; the ratio goes as K-alpha's transmission to the -0.2 to
#: -0.3); the real element standards show 1.0 (Ti, Cr, Fe, Ni, Cu; Zr 0.8)
KB_EXCESS_RATIO = 3.0
#: evidence (sigma) of the K-beta peak's part above that ratio from which it refutes the
#: reading, as :data:`COMPANION_DUE_SIGMA` does for a missing companion
KB_EXCESS_SIGMA = 20.0
#: margin (keV) of another line's energy from where the excess sits: line and centroid
#: systematics of a blend of two unresolved lines
_EXCESS_SYS_KEV = 0.020


def excess_companions(
    gain: float, offset: float, refs: Sequence[_Ref], entries: Sequence[tuple[_Ref, float, float, bool]],
    obs: Sequence[_Obs], anode: str | None, tube_kv: float,
) -> list[tuple[str, float]]:
    """The K-beta lines of the fit's elements whose peak is far stronger than the peak of
    their K-alpha allows (:data:`KB_EXCESS_RATIO` times the line ratio, by
    :data:`KB_EXCESS_SIGMA` or more) where no other line can hold the rest: their names
    and how many times the line ratio they show.

    A wrong axis can read two scattered tube lines as an element's K-alpha and K-beta,
    whatever their ratio: a Cr tube's K lines behind a Ti filter (which takes K-alpha
    five times more than K-beta), 16 % stretched, as Mn K-alpha and K-beta at 4 times
    Mn's ratio, passed every check, 2.1 keV off (held-out 1240073, looked at after its
    run). The rest of the K-beta peak, beyond the share its K-alpha gives it, must be
    another line's: the centre that rest has (the peak's centre moved away from K-beta
    by the inverse of its share) is compared with every other reference line, a Compton
    side of the tube's lines, an escape and a sum peak of the observed peaks. L lines
    are not judged: a primary filter between the L edges changes their ratios."""
    out: list[tuple[str, float]] = []
    present = {e[0].element for e in entries if e[0].kind == "element" and e[0].family == "K"}
    for el in present:
        measured = k_beta_ratio(gain, offset, refs, obs, str(el))
        if measured is None:
            continue
        ratio, kb, pb = measured
        if ratio <= KB_EXCESS_RATIO or pb.significance * (1.0 - KB_EXCESS_RATIO / ratio) < KB_EXCESS_SIGMA:
            continue
        e_b = offset + gain * pb.channel
        if bump_not_line(pb.fwhm * gain, e_b):
            continue  # a filter's transmission window below its edge, no line
        share = 1.0 - 1.0 / ratio  # of the peak, beyond K-beta's own
        rest = kb.keV + (e_b - kb.keV) / share
        tol = (3.0 * pb.err * gain + _EXCESS_SYS_KEV) / share
        if not _other_line_at(rest, tol, kb, refs, (gain, offset), obs, anode, tube_kv):
            out.append((kb.name, float(ratio)))
    return out


def k_beta_ratio(
    gain: float, offset: float, refs: Sequence[_Ref], obs: Sequence[_Obs], element: str
) -> tuple[float, _Ref, _Obs] | None:
    """The area of the peak at ``element``'s K-beta over the area of the one at its
    K-alpha, in units of the tabulated line ratio (1 for a sample element under no
    absorbing layer), with the K-beta reference and its peak; None unless both places
    (on the axis ``gain``, ``offset``: keV per channel, keV) hold distinct observed
    peaks within half a detector FWHM."""
    ka = next((r for r in refs if r.element == element and r.kind == "element" and r.group == "Ka"), None)
    kb = next((r for r in refs if r.element == element and r.kind == "element" and r.group == "Kb"), None)
    if ka is None or kb is None:
        return None
    energies = [offset + gain * q.channel for q in obs]
    pa, pb = (_peak_at(r.keV, energies, obs) for r in (ka, kb))
    if pa is None or pb is None or pa is pb:
        return None
    rel = kb.strength / max(ka.strength, 1e-9)
    return pb.height * pb.fwhm / max(rel * pa.height * pa.fwhm, 1e-12), kb, pb


def _peak_at(keV: float, energies: Sequence[float], obs: Sequence[_Obs]) -> _Obs | None:
    """The observed peak nearest ``keV`` within half a detector FWHM, else None."""
    half = 0.5 * float(_fwhm_at(keV))
    near = [(abs(e - keV), k) for k, e in enumerate(energies) if abs(e - keV) <= half]
    return obs[min(near)[1]] if near else None


def _other_line_at(
    keV: float, tol: float, own: _Ref, refs: Sequence[_Ref], axis: tuple[float, float], obs: Sequence[_Obs],
    anode: str | None, tube_kv: float,
) -> bool:
    """Whether a line other than ``own`` may sit within ``tol`` of ``keV``: a reference
    line (its centroid or a component), a weaker line of a reference element, the
    Compton side of a tube line, the Si escape of an observed peak or the sum of two
    strong ones (their energies on ``axis``: gain keV per channel, offset keV)."""
    for r in refs:  # its centroid (Zr K-alpha1 and 2 make one peak) or a component
        at = (r.keV, *(c[0] for c in r.components))
        if r is not own and r.kind != "zero" and any(abs(e - keV) <= tol for e in at):
            return True
    # the reference elements' weaker lines too (Ba L-ell, 4 % of L-alpha, at Ca K-beta)
    for el in {r.element for r in refs if r.element is not None}:
        for ln in physics.element_lines(el, tube_kv, min_keV=0.9, min_rel=0.01):
            if abs(ln.energy_keV - keV) <= tol and not (el == own.element and ln.family == own.family):
                return True
    if anode is not None:
        for ln in physics.anode_lines(anode, tube_kv):
            lo, hi = compton_side(ln.energy_keV)
            if lo - tol <= keV <= hi + tol:
                return True
    gain, offset = axis
    e = np.array([offset + gain * q.channel for q in obs], dtype=np.float64)
    if e.size and np.any(np.abs(np.asarray(physics.escape_energy(e[e > 1.84])) - keV) <= tol):
        return True
    sums = sum_energies(e, np.array([q.significance for q in obs]))
    return bool(np.any(np.abs(sums - keV) <= tol))
