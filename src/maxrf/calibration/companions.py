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
