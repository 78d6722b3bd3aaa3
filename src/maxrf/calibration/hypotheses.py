"""Candidate calibrations: generation, scoring and refinement (steps 3-4 of
:func:`auto_calibrate`).

Hypotheses (:class:`_Hyp`) from pairs of peaks x pairs of anchor lines within the
plausible gain and offset ranges, their vectorised first scoring, the refinement and
final score of the best ones, and the check that a hypothesis finds the anode's main
line with its Compton partner and K-beta (L-beta) companion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from maxrf.calibration.explain import (
    compton_pair_ok,
    counts_below_zero,
    missing_escapes,
    orphan_escapes,
    refute_missing_companions,
    unexplained_peaks,
    unexplained_weight,
)
from maxrf.calibration.match import (
    _assign,
    _compton_ok,
    _consistent_widths,
    _fano_law,
    _fwhm_at,
    _implied_fwhm6,
    _leverage,
    _lsq,
    _plausible_widths,
    _verification,
    zero_fwhm6,
    zero_width_ok,
)
from maxrf.calibration.observe import _Obs, _Spec
from maxrf.calibration.references import _FWHM6_DEFAULT, _FWHM6_FLOOR, _Ref

#: plausible detector gains (keV per channel)
GAIN_RANGE: tuple[float, float] = (0.004, 0.05)
#: plausible energy of channel 0 (keV): spectrometers put the zero peak near the start of
#: the axis (Bruker -0.96, Amptek about 0); an offset below -2 keV would waste a fifth of
#: the channels on negative energies, one above 1 keV would cut the light elements' lines
#: (Si-Ca K at 1.7-3.7 keV) off the axis. Solutions outside (refined or not) are dropped
OFFSET_RANGE: tuple[float, float] = (-2.0, 1.0)
_FWHM6_RANGE = (0.10, 0.26)  # plausible detector resolution (keV at 5.9 keV)
_TOL = 0.3  # match tolerance, fraction of the (default) detector FWHM


@dataclass
class _Hyp:
    gain: float
    offset: float
    score: float = -np.inf
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (obs index, ref index)
    fwhm6: float = _FWHM6_DEFAULT
    rms_eV: float = np.nan
    credit: dict = field(default_factory=dict)  # (obs, ref) -> score contribution
    refuted: set = field(default_factory=set)  # (obs, ref) whose companion lines are missing
    unexplained: float = np.inf  # score weight of the strong peaks it leaves unexplained
    compton_pair: bool = False  # the anode's two lines matched, Compton partners at one angle


def _refine(
    hyp: _Hyp,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    spec: _Spec,
    anode_ref: _Ref | None,
    anode_weight: float,
    anode: str | None = None,
    tube_kv: float = 50.0,
) -> _Hyp:
    """Least-squares refinement of a hypothesis on its matched peaks, then its score.

    Score: sum over matched peaks of ``weight * exp(-0.5 * (residual / sigma)**2)``; the
    anode's main line adds ``anode_weight`` when matched and removes 30 % of it when
    nothing is at its place; a strong primary line whose companion (K-beta...) is
    missing does not count; a zero peak as narrow as the noise counts fully; strong peaks
    left unexplained cost half their weight. Implausible detector resolutions reject the
    hypothesis.
    """
    n = spec.y.size
    g, o, pairs, fit = _assign_and_fit(hyp.gain, hyp.offset, obs, refs, n)
    out = _Hyp(gain=g, offset=o)
    if fit is None:
        return out
    pairs = _plausible_widths(pairs, obs, refs, g, _FWHM6_RANGE)
    pairs, _ = _consistent_widths(pairs, obs, refs, g)
    fit = _lsq(pairs, obs, refs, g)
    if fit is None:
        return out
    gain, offset, res, sig, inl = fit
    out.gain, out.offset = gain, offset
    out.pairs = [p for p, keep in zip(pairs, inl) if keep]
    f6 = _implied_fwhm6(out.pairs, obs, refs, gain)
    if f6 is not None and not (_FWHM6_RANGE[0] <= f6 <= _FWHM6_RANGE[1]):
        return out  # score stays -inf
    out.fwhm6 = float(np.clip(f6, _FWHM6_FLOOR, 0.4)) if f6 is not None else _FWHM6_DEFAULT
    ch_in = np.array([obs[k].channel for k, _ in out.pairs])
    tol_in = _TOL * _fwhm_at(np.array([refs[r].keV for _, r in out.pairs])) + np.array(
        [refs[r].tol_keV for _, r in out.pairs]
    )
    credit = _verification(res[inl], sig[inl], _leverage(ch_in, sig[inl]), tol_in)
    like = dict(zip(out.pairs, credit))
    contrib = {p: obs[p[0]].weight * like[p] for p in out.pairs}
    out.rms_eV = float(np.sqrt(np.mean(res[inl] ** 2)) * 1e3)
    # the anode's main line: a bonus when matched
    if anode_ref is not None:
        hit = [p for p in out.pairs if refs[p[1]] is anode_ref]
        if hit and _compton_ok(spec, gain, offset, anode_ref) is not False:
            k = hit[0][0]
            contrib[hit[0]] += anode_weight * like[hit[0]] * min(1.0, obs[k].significance / 50.0)
    out.refuted = refute_missing_companions(out.pairs, obs, refs, gain, offset, n) | orphan_escapes(
        out.pairs, obs, refs, gain, offset, n
    )
    out.compton_pair = compton_pair_ok(out.pairs, obs, refs, gain, offset, n)
    if out.compton_pair:
        # the tube's two lines with Compton partners at one angle: verified beyond the
        # two-point fit that alone cannot verify them
        for p in out.pairs:
            if refs[p[1]].kind == "anode" and refs[p[1]].strength >= 0.1:
                contrib[p] = max(contrib[p], obs[p[0]].weight)
    for p in out.refuted | missing_escapes(out.pairs, obs, refs, gain, offset):
        contrib[p] = 0.0  # a strong line without its companion or escape: not that line
    for p in out.pairs:
        # a strong peak as narrow as the noise alone: a verified zero (the fit cannot
        # verify it by leave-one-out, being the only point near 0 keV)
        if refs[p[1]].kind == "zero" and obs[p[0]].ok and obs[p[0]].significance >= 30:
            if zero_width_ok(obs[p[0]], gain, zero_fwhm6(out.pairs, obs, refs, gain)):
                contrib[p] = max(contrib[p], obs[p[0]].weight)
    score = sum(contrib.values())
    left = unexplained_peaks(out.pairs, obs, refs, gain, offset, anode, tube_kv)
    out.unexplained = unexplained_weight(left, obs)
    score -= 0.5 * out.unexplained
    lines = [obs[k].significance for k, r in out.pairs if refs[r].kind != "zero"]
    if left and lines and max(obs[k].significance for k, _ in left) > max(lines):
        # the strongest line of the spectrum unexplained: not its axis
        score = 0.2 * score if score > 0 else score - 0.5 * max(lines) ** 0.5
    score = _physical_penalties(score, out, obs, refs, spec, anode_ref, anode_weight)
    out.score = float(score)
    out.credit = dict(contrib)
    return out


def _physical_penalties(
    score: float, hyp: _Hyp, obs: Sequence[_Obs], refs: Sequence[_Ref], spec: _Spec, anode_ref: _Ref | None,
    anode_weight: float,
) -> float:
    """A hypothesis' score less what physics holds against it: widths growing at the
    wrong rate, nothing at the anode's main line, counts at negative energies."""
    gain, offset = hyp.gain, hyp.offset
    law = _fano_law(hyp.pairs, obs, refs, gain)
    if law is not None and law.outside(0.4, 2.5, 2.0):
        score *= 0.2  # widths grow with energy at the wrong rate: the gain is off
    if anode_ref is not None and not any(refs[r] is anode_ref for _, r in hyp.pairs):
        # nothing at the anode's main line
        tol_ch = (_TOL * float(_fwhm_at(anode_ref.keV)) + anode_ref.tol_keV) / gain
        ev = spec.line_evidence((anode_ref.keV - offset) / gain, tol_ch)
        if np.isfinite(ev) and ev < 3.0:
            score -= 0.3 * anode_weight
    if counts_below_zero(spec.y, gain, offset):
        # counts where no photon can be: the offset (and with it the gain) is wrong
        score = (0.1 * score if score > 0 else score) - 0.5 * anode_weight
    return score


def _assign_and_fit(
    g: float, o: float, obs: Sequence[_Obs], refs: Sequence[_Ref], n: int
) -> tuple[float, float, list[tuple[int, int]], tuple | None]:
    """Alternate matching (tolerances narrowing from 0.5 to 0.3 FWHM) and straight-line
    fits from (gain ``g``, offset ``o``): (gain, offset, pairs, last fit or None)."""
    pairs: list[tuple[int, int]] = []
    fit = None
    for tol_frac in (0.5, 0.4, _TOL, _TOL):
        new_pairs = _assign(g, o, obs, refs, tol_frac, n)
        new_fit = _lsq(new_pairs, obs, refs, g)
        if new_fit is None or not (GAIN_RANGE[0] * 0.8 < new_fit[0] < GAIN_RANGE[1] * 1.2):
            break
        pairs, fit = new_pairs, new_fit
        g, o = fit[0], fit[1]
    return g, o, pairs, fit


def _at_line(ob: _Obs, hyp: _Hyp, ref: _Ref) -> bool:
    """Whether a significant peak (>= 15 sigma) lies within 0.15 FWHM (and the line's own
    tolerance) of line ``ref`` on the axis of ``hyp``."""
    e = hyp.offset + hyp.gain * ob.channel
    return ob.significance >= 15.0 and abs(e - ref.keV) <= 0.15 * float(_fwhm_at(ref.keV)) + ref.tol_keV


def _anode_verified(hyp: _Hyp, obs: Sequence[_Obs], refs: Sequence[_Ref], anode_ref: _Ref) -> bool:
    """Whether a hypothesis puts a significant peak (>= 15 sigma) within 0.15 FWHM of the
    anode's main line, with its Compton partner below it."""
    for k, r in hyp.pairs:
        if refs[r] is anode_ref and obs[k].significance >= 15.0:
            if not _at_line(obs[k], hyp, anode_ref):
                return False
            return _anode_pattern_ok(obs[k].spec, hyp.gain, hyp.offset, anode_ref, refs)
    return False


def _anode_pattern_ok(spec: _Spec, gain: float, offset: float, anode_ref: _Ref, refs: Sequence[_Ref]) -> bool:
    """The anode's main line comes with its Compton partner and, when on the axis, its
    K-beta (L-beta) Rayleigh companion (seen at its place above the baseline)."""
    if _compton_ok(spec, gain, offset, anode_ref) is False:
        return False
    n = spec.y.size
    for r in refs:
        if r.kind != "anode" or r.family != anode_ref.family or r.fprimary:
            continue
        if r.strength < 0.1:
            continue
        c = (r.keV - offset) / gain
        if not (2 <= c <= n - 3):
            continue
        tol = max(1.0, 0.15 * float(_fwhm_at(r.keV)) / gain)
        ev = spec.line_evidence(c, tol)
        if np.isfinite(ev) and ev < 3.0:
            return False
    return True


def _hypotheses(
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    n_channels: int,
    gain_range: tuple[float, float],
    offset_range: tuple[float, float],
    n_anchor_peaks: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (gain, offset) arrays from pairs of peaks x pairs of anchor lines."""
    # broad peaks too: the blend of a soft anode line with its Compton peak is one
    usable = list(range(len(obs)))
    usable.sort(key=lambda i: -obs[i].significance)
    anchors_obs = sorted(usable[:n_anchor_peaks], key=lambda i: obs[i].channel)
    c = np.array([obs[i].channel for i in anchors_obs])
    ea = np.array([r.keV for r in refs if r.anchor])
    if c.size < 2 or ea.size < 2:
        return np.empty(0), np.empty(0)
    i1, i2 = np.triu_indices(c.size, 1)
    dc = c[i2] - c[i1]
    j1, j2 = np.triu_indices(ea.size, 1)
    de = ea[j2] - ea[j1]
    gain = de[None, :] / dc[:, None]
    offset = ea[j1][None, :] - gain * c[i1][:, None]
    gain, offset = gain.ravel(), offset.ravel()
    top = offset + gain * (n_channels - 1)
    keep = (
        (gain >= gain_range[0])
        & (gain <= gain_range[1])
        & (offset >= offset_range[0])
        & (offset <= offset_range[1])
        & (top >= 3.0)
    )
    return gain[keep], offset[keep]
