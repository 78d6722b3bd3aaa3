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

from maxrf.calibration.explain import unexplained_weight, zero_width_ok
from maxrf.calibration.match import (
    _assign,
    _companion_present,
    _compton_ok,
    _consistent_widths,
    _fano_ratio,
    _fwhm_at,
    _implied_fwhm6,
    _leverage,
    _lsq,
    _model_sigma,
    _plausible_widths,
    _verification,
    _width_ok,
)
from maxrf.calibration.observe import _Obs, _Spec
from maxrf.calibration.references import _FWHM6_DEFAULT, _Ref

#: plausible detector gains (keV per channel)
GAIN_RANGE: tuple[float, float] = (0.004, 0.05)
#: plausible energy of channel 0 (keV)
OFFSET_RANGE: tuple[float, float] = (-5.0, 5.0)
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
    missing does not count. Implausible detector resolutions reject the hypothesis.
    """
    n = spec.y.size
    g, o = hyp.gain, hyp.offset
    pairs: list[tuple[int, int]] = []
    fit = None
    for tol_frac in (0.5, 0.4, _TOL, _TOL):
        new_pairs = _assign(g, o, obs, refs, tol_frac, n)
        new_fit = _lsq(new_pairs, obs, refs, g)
        if new_fit is None or not (GAIN_RANGE[0] * 0.8 < new_fit[0] < GAIN_RANGE[1] * 1.2):
            break
        pairs, fit = new_pairs, new_fit
        g, o = fit[0], fit[1]
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
    out.fwhm6 = float(np.clip(f6, 0.121, 0.4)) if f6 is not None else _FWHM6_DEFAULT
    ch_in = np.array([obs[k].channel for k, _ in out.pairs])
    tol_in = _TOL * _fwhm_at(np.array([refs[r].keV for _, r in out.pairs])) + np.array(
        [refs[r].tol_keV for _, r in out.pairs]
    )
    credit = _verification(res[inl], sig[inl], _leverage(ch_in, sig[inl]), tol_in)
    like = dict(zip(out.pairs, credit))
    contrib = {p: obs[p[0]].weight * like[p] for p in out.pairs}
    out.rms_eV = float(np.sqrt(np.mean(res[inl] ** 2)) * 1e3)

    def chan(kev: float) -> float:
        return (kev - offset) / gain

    # the anode's main line: a bonus when matched, a penalty when nothing is at its place
    if anode_ref is not None:
        hit = [p for p in out.pairs if refs[p[1]] is anode_ref]
        if hit and _compton_ok(spec, gain, offset, anode_ref) is not False:
            k = hit[0][0]
            contrib[hit[0]] += anode_weight * like[hit[0]] * min(1.0, obs[k].significance / 50.0)
    # strong main lines must show their companions (K-beta, L-beta...) as peaks
    matched_refs = {r for _, r in out.pairs}
    obs_e = offset + gain * np.array([ob.channel for ob in obs])
    obs_sig = np.array([ob.significance for ob in obs])
    for p in out.pairs:
        k, r = p
        prim = refs[r]
        if not prim.fprimary or prim.element is None:
            continue
        sigk = obs[k].significance
        for q, ref in enumerate(refs):
            if ref.element != prim.element or ref.family != prim.family:
                continue
            if ref.fprimary:
                continue
            rel = ref.strength / max(prim.strength, 1e-9)
            expected = sigk * rel
            if rel < 0.05 or expected < 30.0:
                continue
            if q in matched_refs:
                got = max(obs[kk].significance for kk, rr in out.pairs if rr == q)
                if got >= 0.05 * expected:
                    continue
                contrib[p] = 0.0  # its companion is far too weak: not that line
                out.refuted.add(p)
                break
            c = chan(ref.keV)
            if not (2 <= c <= n - 3):
                continue
            # masked by a peak matched to another line: cannot tell, no verdict
            fw_q = float(_fwhm_at(ref.keV))
            if any(abs(obs_e[kk] - ref.keV) <= 1.0 * fw_q and kk != k for kk, _ in out.pairs):
                continue
            if not _companion_present(obs[k], ref, rel, c, gain, obs_e, obs_sig, expected):
                contrib[p] = 0.0  # a strong line without its companion: not that line
                out.refuted.add(p)
                break
    fano = _fano_ratio(out.pairs, obs, refs, gain)
    for p in out.pairs:
        # a strong peak as narrow as the noise alone: a verified zero (the fit cannot
        # verify it by leave-one-out, being the only point near 0 keV)
        if refs[p[1]].kind == "zero" and obs[p[0]].ok and obs[p[0]].significance >= 30:
            if zero_width_ok(obs[p[0]], gain, f6):
                contrib[p] = max(contrib[p], obs[p[0]].weight)
    score = sum(contrib.values())
    score -= 0.5 * unexplained_weight(out.pairs, obs, refs, gain, offset, anode, tube_kv, n)
    if fano is not None and not 0.4 <= fano <= 2.5:
        score *= 0.2  # widths grow with energy at the wrong rate: the gain is off
    if anode_ref is not None and not any(refs[r] is anode_ref for _, r in out.pairs):
        tol_ch = (_TOL * float(_fwhm_at(anode_ref.keV)) + anode_ref.tol_keV) / gain
        ev = spec.line_evidence(chan(anode_ref.keV), tol_ch)
        if np.isfinite(ev) and ev < 3.0:
            score -= 0.3 * anode_weight
    out.score = float(score)
    out.credit = dict(contrib)
    return out


def _anode_verified(hyp: _Hyp, obs: Sequence[_Obs], refs: Sequence[_Ref], anode_ref: _Ref) -> bool:
    """Whether a hypothesis puts a significant peak (>= 15 sigma) within 0.15 FWHM of the
    anode's main line, with its Compton partner below it."""
    for k, r in hyp.pairs:
        if refs[r] is anode_ref and obs[k].significance >= 15.0:
            e = hyp.offset + hyp.gain * obs[k].channel
            if abs(e - anode_ref.keV) > 0.15 * float(_fwhm_at(anode_ref.keV)) + anode_ref.tol_keV:
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


def _medium_scores(
    gain: np.ndarray,
    offset: np.ndarray,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    spec: _Spec,
    anode_ref: _Ref | None,
    anode_weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised refinement and likelihood score of many hypotheses.

    Per hypothesis: match every peak to its nearest line, two weighted least-squares
    updates of (gain, offset), then the score ``sum(weight * exp(-0.5 (res/sigma)**2))``
    over matches of plausible width whose family main line is matched too, plus the anode
    bonus. Returns (score, gain, offset, anode quality); the anode quality is the
    significance of the peak matched to the anode's main line times the Gaussian
    closeness of the match (0 when not matched within 0.15 FWHM by a 15-sigma peak).
    """
    ref_e = np.array([r.keV for r in refs])
    ref_sys = np.array([r.sys_keV for r in refs])
    ref_tol = np.array([r.tol_keV for r in refs])
    ref_scatter = np.array([r.kind == "scatter" for r in refs])
    index = {id(r): i for i, r in enumerate(refs)}
    fam_main = {(r.element, r.family): index[id(r)] for r in refs if r.fprimary}
    needs = np.array(
        [-1 if (r.fprimary or r.kind != "element") else fam_main.get((r.element, r.family), -1) for r in refs]
    )
    anode_i = -1 if anode_ref is None else index[id(anode_ref)]
    ch = np.array([o.channel for o in obs])
    err = np.array([o.err for o in obs])
    w = np.array([o.weight for o in obs])
    fw = np.array([o.fwhm for o in obs])
    sg = np.array([o.significance for o in obs])
    n = spec.y.size
    out_s = np.full(gain.size, -np.inf)
    out_g = gain.copy()
    out_o = offset.copy()
    out_v = np.zeros(gain.size)
    step = 4000
    for a in range(0, gain.size, step):
        g = gain[a : a + step, None].copy()
        o = offset[a : a + step, None].copy()

        def match(g: np.ndarray, o: np.ndarray, frac: float):
            e = o + g * ch[None, :]
            pos = np.clip(np.searchsorted(ref_e, e), 1, ref_e.size - 1)
            left = np.abs(e - ref_e[pos - 1]) < np.abs(e - ref_e[pos])
            j = np.where(left, pos - 1, pos)
            res = e - ref_e[j]
            ok = (np.abs(res) <= frac * _fwhm_at(e) + ref_tol[j]) & _width_ok(
                fw[None, :] * g, ref_e[j], sg, ref_scatter[j]
            )
            sig2 = (
                (g * err[None, :]) ** 2 + ref_sys[j] ** 2 + _model_sigma(_fwhm_at(ref_e[j]), sg[None, :]) ** 2
            )
            return j, res, ok, sig2

        for frac, clip in ((0.5, 4.0), (0.35, 3.0), (0.3, 2.5)):
            j, res, ok, sig2 = match(g, o, frac)
            # robust: only matches consistent with the current line move it
            wt = np.where(ok & (res * res <= clip * clip * sig2), 1.0 / sig2, 0.0)
            e_ref = ref_e[j]
            s0 = wt.sum(1)
            s1 = (wt * ch).sum(1)
            s2 = (wt * ch * ch).sum(1)
            t0 = (wt * e_ref).sum(1)
            t1 = (wt * ch * e_ref).sum(1)
            det = s0 * s2 - s1 * s1
            good = (np.count_nonzero(wt > 0, axis=1) >= 2) & (det > 1e-12 * np.maximum(s0 * s2, 1e-300))
            g_new = np.where(good, (s0 * t1 - s1 * t0) / np.where(good, det, 1.0), g[:, 0])
            o_new = np.where(good, (t0 - g_new * s1) / np.where(s0 > 0, s0, 1.0), o[:, 0])
            sane = good & (g_new > GAIN_RANGE[0] * 0.8) & (g_new < GAIN_RANGE[1] * 1.2)
            g[:, 0] = np.where(sane, g_new, g[:, 0])
            o[:, 0] = np.where(sane, o_new, o[:, 0])
        j, res, ok, sig2 = match(g, o, _TOL)
        # verification credit (see _verification) of each match in each hypothesis
        wt = np.where(ok, 1.0 / sig2, 0.0)
        s0 = wt.sum(1, keepdims=True)
        s1 = (wt * ch).sum(1, keepdims=True)
        s2 = (wt * ch * ch).sum(1, keepdims=True)
        det = s0 * s2 - s1 * s1
        with np.errstate(divide="ignore", invalid="ignore"):
            lev = np.where(det > 0, wt * (s2 - 2.0 * ch * s1 + ch * ch * s0) / det, 1.0)
        like = _verification(res, np.sqrt(sig2), lev, _TOL * _fwhm_at(ref_e[j]) + ref_tol[j])
        # secondary lines count only with their family's main line matched
        h = np.arange(j.shape[0])[:, None]
        matched = np.zeros((j.shape[0], ref_e.size), dtype=bool)
        np.logical_or.at(matched, (np.broadcast_to(h, j.shape)[ok], j[ok]), True)
        need = needs[j]
        main_e = np.where(need >= 0, ref_e[np.maximum(need, 0)], 0.0)
        main_on = (main_e > o) & (main_e < o + g * (n - 1))
        has_main = matched[np.broadcast_to(h, j.shape), np.maximum(need, 0)]
        valid = ok & ((need < 0) | has_main | ~main_on)
        score = (valid * like * w[None, :]).sum(1)
        if anode_i >= 0:
            is_anode = valid & (j == anode_i)
            fw_a = float(_fwhm_at(ref_e[anode_i]))
            tol_a = float(ref_tol[anode_i])
            close = np.abs(res) <= 0.15 * fw_a + tol_a
            quality = sg[None, :] * np.exp(-0.5 * (res / (0.1 * fw_a + tol_a)) ** 2)
            good_a = is_anode & close & (sg >= 15.0)[None, :]
            out_v[a : a + step] = np.where(good_a, quality, 0.0).max(1)
            bonus = (is_anode * like * np.minimum(1.0, sg / 50.0)[None, :]).max(1)
            score += anode_weight * bonus
            ca = (ref_e[anode_i] - o[:, 0]) / g[:, 0]
            on = (ca >= 2) & (ca <= n - 3)
            ev = spec.evidence[np.clip(np.rint(ca).astype(np.int64), 0, n - 1)]
            score -= np.where(on & ~is_anode.any(1) & (ev < 3.0), 0.3 * anode_weight, 0.0)
        out_s[a : a + step] = score
        out_g[a : a + step] = g[:, 0]
        out_o[a : a + step] = o[:, 0]
    return out_s, out_g, out_o, out_v
