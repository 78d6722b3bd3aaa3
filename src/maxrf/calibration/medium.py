"""The vectorised first scoring of many calibration hypotheses (step 3 of
:func:`auto_calibrate`).

Every hypothesis (gain, offset) matches each peak to its nearest reference line, takes
three robust weighted least-squares steps with narrowing tolerances, and is scored by the
verification credit of its matches (secondary lines only with their family's main line)
plus the anode bonus. Hypotheses are processed in chunks of arrays, one row each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maxrf.calibration.explain import NEGATIVE_PEAK_SIGMA
from maxrf.calibration.match import _fwhm_at, _model_sigma, _verification, _width_ok, zero_fwhm_limit
from maxrf.calibration.observe import _Obs, _Spec
from maxrf.calibration.references import _cluster_fwhm, _Ref

_TOL = 0.3  # final match tolerance, fraction of the (default) detector FWHM
_CHUNK = 4000  # hypotheses per array pass
#: (tolerance fraction of the FWHM, clip in sigmas) of the three robust refinement steps
_STEPS = ((0.5, 4.0), (0.35, 3.0), (0.3, 2.5))


@dataclass
class _Lines:
    """Reference lines and observed peaks as arrays."""

    e: np.ndarray  # line energies (keV)
    sys: np.ndarray  # systematic uncertainties (keV)
    tol: np.ndarray  # extra match tolerances (keV)
    scatter: np.ndarray  # scatter blends (bool)
    spread: np.ndarray  # FWHM (keV) the spread of each line's components adds
    needs: np.ndarray  # index of the family main line a secondary element line needs, else -1
    anode: int  # index of the anode's main line, -1 when none
    zero: int  # index of the zero peak's reference, -1 when none
    fit_ok: np.ndarray  # peaks whose shape fit converged (_Obs.ok)
    ch: np.ndarray  # peak channels
    err: np.ndarray  # their errors (channels)
    w: np.ndarray  # score weights
    fw: np.ndarray  # FWHM (channels)
    fw_wide: np.ndarray  # the larger width estimate (channels; _Obs.widest)
    sg: np.ndarray  # significances
    n: int  # channels of the spectrum
    evidence: np.ndarray  # the spectrum's per-channel evidence above its baseline


def _lines(obs: Sequence[_Obs], refs: Sequence[_Ref], spec: _Spec, anode_ref: _Ref | None) -> _Lines:
    index = {id(r): i for i, r in enumerate(refs)}
    fam_main = {(r.element, r.family): index[id(r)] for r in refs if r.fprimary}
    needs = [
        -1 if (r.fprimary or r.kind != "element") else fam_main.get((r.element, r.family), -1) for r in refs
    ]
    return _Lines(
        e=np.array([r.keV for r in refs]),
        sys=np.array([r.sys_keV for r in refs]),
        tol=np.array([r.tol_keV for r in refs]),
        scatter=np.array([r.kind in ("scatter", "escape") for r in refs]),
        spread=np.array([_cluster_fwhm(r) for r in refs]),
        needs=np.array(needs),
        anode=-1 if anode_ref is None else index[id(anode_ref)],
        zero=next((i for i, r in enumerate(refs) if r.kind == "zero"), -1),
        fit_ok=np.array([o.ok for o in obs]),
        ch=np.array([o.channel for o in obs]),
        err=np.array([o.err for o in obs]),
        w=np.array([o.weight for o in obs]),
        fw=np.array([o.fwhm for o in obs]),
        fw_wide=np.array([o.widest for o in obs]),
        sg=np.array([o.significance for o in obs]),
        n=spec.y.size,
        evidence=spec.evidence,
    )


def medium_scores(
    gain: np.ndarray,
    offset: np.ndarray,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    spec: _Spec,
    anode_ref: _Ref | None,
    anode_weight: float,
    gain_limits: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised refinement and likelihood score of many hypotheses.

    Per hypothesis: match every peak to its nearest line, three weighted least-squares
    updates of (gain, offset) (``gain_limits``: the sane range, keV/channel), then the
    score ``sum(weight * credit)`` over matches of plausible width whose family main line
    is matched too, plus the anode bonus. Returns (score, gain, offset, anode quality);
    the anode quality is the significance of the peak matched to the anode's main line
    times the Gaussian closeness of the match (0 when not matched within 0.15 FWHM by a
    15-sigma peak).
    """
    ln = _lines(obs, refs, spec, anode_ref)
    out_s = np.full(gain.size, -np.inf)
    out_g, out_o = gain.copy(), offset.copy()
    out_v = np.zeros(gain.size)
    for a in range(0, gain.size, _CHUNK):
        g = gain[a : a + _CHUNK, None].copy()
        o = offset[a : a + _CHUNK, None].copy()
        for frac, clip in _STEPS:
            _step(g, o, frac, clip, ln, gain_limits)
        score, verified = _score(g, o, ln, anode_weight)
        out_s[a : a + _CHUNK], out_v[a : a + _CHUNK] = score, verified
        out_g[a : a + _CHUNK], out_o[a : a + _CHUNK] = g[:, 0], o[:, 0]
    return out_s, out_g, out_o, out_v


def _match(g: np.ndarray, o: np.ndarray, frac: float, ln: _Lines):
    """Nearest line of every peak under every hypothesis: (line index, residual keV,
    within tolerance and of plausible width, variance keV**2)."""
    e = o + g * ln.ch[None, :]
    pos = np.clip(np.searchsorted(ln.e, e), 1, ln.e.size - 1)
    left = np.abs(e - ln.e[pos - 1]) < np.abs(e - ln.e[pos])
    j = np.where(left, pos - 1, pos)
    res = e - ln.e[j]
    near = np.abs(res) <= frac * _fwhm_at(e) + ln.tol[j]
    wide = ln.fw_wide[None, :] * g
    ok = near & _width_ok(ln.fw[None, :] * g, ln.e[j], ln.sg, ln.scatter[j], ln.spread[j], wide)
    sig2 = (g * ln.err[None, :]) ** 2 + ln.sys[j] ** 2 + _model_sigma(_fwhm_at(ln.e[j]), ln.sg[None, :]) ** 2
    return j, res, ok, sig2


def _step(
    g: np.ndarray, o: np.ndarray, frac: float, clip: float, ln: _Lines, gain_limits: tuple[float, float]
) -> None:
    """One robust weighted straight-line update of ``g`` and ``o`` in place: only matches
    consistent with the current line (within ``clip`` sigmas) move it."""
    j, res, ok, sig2 = _match(g, o, frac, ln)
    wt = np.where(ok & (res * res <= clip * clip * sig2), 1.0 / sig2, 0.0)
    e_ref, ch = ln.e[j], ln.ch
    s0, s1, s2 = wt.sum(1), (wt * ch).sum(1), (wt * ch * ch).sum(1)
    t0, t1 = (wt * e_ref).sum(1), (wt * ch * e_ref).sum(1)
    det = s0 * s2 - s1 * s1
    good = (np.count_nonzero(wt > 0, axis=1) >= 2) & (det > 1e-12 * np.maximum(s0 * s2, 1e-300))
    g_new = np.where(good, (s0 * t1 - s1 * t0) / np.where(good, det, 1.0), g[:, 0])
    o_new = np.where(good, (t0 - g_new * s1) / np.where(s0 > 0, s0, 1.0), o[:, 0])
    sane = good & (g_new > gain_limits[0]) & (g_new < gain_limits[1])
    g[:, 0] = np.where(sane, g_new, g[:, 0])
    o[:, 0] = np.where(sane, o_new, o[:, 0])


def _score(g: np.ndarray, o: np.ndarray, ln: _Lines, anode_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Score and anode quality of each hypothesis (see :func:`medium_scores`)."""
    j, res, ok, sig2 = _match(g, o, _TOL, ln)
    ch = ln.ch
    # verification credit (see _verification) of each match in each hypothesis
    wt = np.where(ok, 1.0 / sig2, 0.0)
    s0, s1 = wt.sum(1, keepdims=True), (wt * ch).sum(1, keepdims=True)
    s2 = (wt * ch * ch).sum(1, keepdims=True)
    det = s0 * s2 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        lev = np.where(det > 0, wt * (s2 - 2.0 * ch * s1 + ch * ch * s0) / det, 1.0)
    like = _verification(res, np.sqrt(sig2), lev, _TOL * _fwhm_at(ln.e[j]) + ln.tol[j])
    if ln.zero >= 0:
        # a strong peak as narrow as the noise alone is a verified zero, as in the final
        # score (hypotheses._refine): the lines far above it cannot verify it by
        # leave-one-out, and without it the true axis of a spectrum whose zero peak is its
        # strongest ranked 262nd of 2895 (held-out 990184)
        # only the first peak on the axis can be the zero: a line read as the zero with
        # peaks below it (at negative energies) crowded out the true axis of an Rh blank
        # without one (dev 500234); the final score weighs those peaks
        first = ln.ch <= ln.ch[ln.sg >= NEGATIVE_PEAK_SIGMA].min(initial=np.inf)
        narrow = ln.fit_ok & (ln.sg >= 30.0) & first
        zero = ok & (j == ln.zero) & narrow[None, :] & (ln.fw[None, :] * g <= zero_fwhm_limit())
        like = np.where(zero, 1.0, like)
    # secondary lines count only with their family's main line matched
    h = np.broadcast_to(np.arange(j.shape[0])[:, None], j.shape)
    matched = np.zeros((j.shape[0], ln.e.size), dtype=bool)
    np.logical_or.at(matched, (h[ok], j[ok]), True)
    need = ln.needs[j]
    main_e = np.where(need >= 0, ln.e[np.maximum(need, 0)], 0.0)
    main_on = (main_e > o) & (main_e < o + g * (ln.n - 1))
    valid = ok & ((need < 0) | matched[h, np.maximum(need, 0)] | ~main_on)
    score = (valid * like * ln.w[None, :]).sum(1)
    verified = np.zeros(j.shape[0])
    if ln.anode >= 0:
        bonus, verified, missing = _anode_terms(g, o, j, res, valid, like, ln)
        score += anode_weight * bonus - np.where(missing, 0.3 * anode_weight, 0.0)
    return score, verified


def _anode_terms(
    g: np.ndarray, o: np.ndarray, j: np.ndarray, res: np.ndarray, valid: np.ndarray, like: np.ndarray,
    ln: _Lines,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hypothesis: the anode bonus (0..1), the anode quality, and whether nothing is
    at the anode's main line (on the axis, no match, no evidence)."""
    ai = ln.anode
    is_anode = valid & (j == ai)
    fw_a = float(_fwhm_at(ln.e[ai]))
    tol_a = float(ln.tol[ai])
    close = np.abs(res) <= 0.15 * fw_a + tol_a
    quality = ln.sg[None, :] * np.exp(-0.5 * (res / (0.1 * fw_a + tol_a)) ** 2)
    good_a = is_anode & close & (ln.sg >= 15.0)[None, :]
    verified = np.where(good_a, quality, 0.0).max(1)
    bonus = (is_anode * like * np.minimum(1.0, ln.sg / 50.0)[None, :]).max(1)
    ca = (ln.e[ai] - o[:, 0]) / g[:, 0]
    on = (ca >= 2) & (ca <= ln.n - 3)
    ev = ln.evidence[np.clip(np.rint(ca).astype(np.int64), 0, ln.n - 1)]
    return bonus, verified, on & ~is_anode.any(1) & (ev < 3.0)
