"""Checks that a calibration pinned by few lines is pinned uniquely.

A calibration can fit its peaks within a few eV and still be 30 eV off at 2 or 20 keV:
when a fitted peak is a Rayleigh line inside its Compton blend (its centre is biased by
the blend's unknown shape), when a fitted element line has a neighbour of another
element a few tens of eV away (the peak may be that neighbour's), or when a fitted
"line" is a Compton peak (far broader than the detector makes a line). These checks
look for exactly those weaknesses; each failure keeps a calibration from ``good``.

* :func:`axis_sys_keV` - the systematic uncertainty of a fitted line's centre for judging
  the axis (a Rayleigh line in a Compton blend:
  :data:`maxrf.calibration.precise.BLEND_SYS_KEV`);
* :func:`alias_check` - refits with each fitted element line replaced by another
  element's main line nearby; an alternative that fits as well and moves the 2-20 keV
  axis by more than :data:`ALIAS_SHIFT_EV` makes the calibration ambiguous;
* :func:`broad_lines_check` - strong fitted lines, and the tube's Rayleigh lines taken
  together, are no broader than the detector law FWHM^2 = noise^2 + Fano slope x E
  allows, the noise measured on the zero peak;
* :func:`continuum_end_check` - the scattered continuum ends at the tube voltage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.calibration.match import FITTED_WIDTH_FLOOR, _fwhm_at, fit_axis, width_measured
from maxrf.calibration.observe import _Obs, _Spec
from maxrf.calibration.precise import _fit_sys_keV, centre_sys_keV
from maxrf.calibration.quality import RESIDUAL_TOL_EV, axis_difference_eV, check
from maxrf.calibration.references import _cluster_fwhm, _Ref, components_within

#: least systematic uncertainty (keV) of a fluorescence line's fitted centre: an unknown
#: neighbour's line can pull it (an absorber never moves a line: it acts on the photons
#: before the detector broadens them; a steep background is :func:`slope_sys_keV`'s)
ELEMENT_SYS_KEV = 0.002
#: largest move (eV) of the 2-20 keV axis an alternative identification may cause before
#: the calibration is ambiguous (the verdict's promise is 30 eV)
ALIAS_SHIFT_EV = 20.0
#: how far (keV) another line may lie from a fitted line to be an alias (a fit pinned
#: by one soft line follows it wherever it is put; the other peaks decide)
ALIAS_WINDOW_KEV = 0.150
#: a strong fitted line broader than this many times the detector law is not a line
BROAD_FACTOR = 1.45
#: lines below this energy (keV) are not judged by width
BROAD_MIN_KEV = 4.0

Entry = tuple[_Ref, float, float, bool]


def axis_sys_keV(ref: _Ref) -> float:
    """Systematic uncertainty (keV) of a fitted line's centre when judging the axis."""
    if ref.kind == "element":
        return max(ref.sys_keV, ELEMENT_SYS_KEV)
    return _fit_sys_keV(ref)  # a Rayleigh line in its Compton blend: BLEND_SYS_KEV


def slope_sys_keV(spec: _Spec, channel: float, fwhm_ch: float, gain: float) -> float:
    """Bias (keV) a steep background puts on a line's centre: a Gaussian line of width
    sigma multiplied by a transmission ``T(E)`` (a filter or absorber below its edge)
    moves by ``sigma**2 * dln T / dE``; the slope of the log baseline bounds that."""
    n = spec.base.size
    half = 1.5 * max(fwhm_ch, 1.0)
    lo, hi = int(max(channel - half, 0)), int(min(channel + half, n - 1))
    if hi - lo < 2:
        return 0.0
    b_lo = max(float(np.mean(spec.base[max(lo - 2, 0) : lo + 3])), 0.05)
    b_hi = max(float(np.mean(spec.base[hi - 2 : hi + 3])), 0.05)
    dlog = abs(math.log(b_hi / b_lo)) / ((hi - lo) * gain)
    sigma = fwhm_ch * gain / physics.FWHM_PER_SIGMA
    return sigma**2 * dlog


def entry_sys_keV(ref: _Ref, channel: float, obs: Sequence[_Obs], gain: float) -> float:
    """Systematic uncertainty (keV) of a fitted peak's centre for the axis' uncertainty:
    the measured one of its line class (:func:`maxrf.calibration.precise.centre_sys_keV`,
    of a zero peak cut by the start of the axis too) and, for an element line, the
    steep-background bias (:func:`slope_sys_keV`) at its detector width."""
    if not obs:
        return centre_sys_keV(ref)
    o = min(obs, key=lambda q: abs(q.channel - channel))
    sys = centre_sys_keV(ref, bool(o.edge))
    if ref.kind != "element":
        # the background of a scattered anode line is its own Compton peak, which its
        # fit models (a Rayleigh line beside a steep Compton flank is 1-3 eV off at the
        # true axis of dev seeds 200000-200299, the slope bound would say 15-90 eV)
        return sys
    fwhm_ch = float(_fwhm_at(ref.keV)) / gain  # the line's own width, not a blend's
    return math.hypot(sys, slope_sys_keV(o.spec, channel, fwhm_ch, gain))


def _alternatives(refs: Sequence[_Ref]) -> list[tuple[str, float]]:
    """(name, keV) of the lines a fitted element line may really be: other elements'
    main lines and every line of the anode (a blank scatters its weak L or M lines too)."""
    out = [(q.name, q.keV) for q in refs if q.kind == "element" and q.fprimary]
    anode = {q.element for q in refs if q.kind in ("anode", "scatter") and q.element}
    for el in anode:
        lines = physics.element_lines(el, 100.0, min_keV=0.9, min_rel=0.001)
        out += [(f"{el} {ln.siegbahn}", ln.energy_keV) for ln in lines]
    return out


#: least ratio of an element's K-alpha to its L-alpha emission (:func:`maxrf.physics.
#: element_lines`, at the tube voltage) at which reading a peak as its L-alpha needs a
#: peak at its K-alpha: the tube excites the K shell (Ag at 35-50 kV: 1.7-5; Sn at 30 kV,
#: barely: 0.02). K lines are the harder ones; a layer that lets an element's L lines
#: through lets its K lines through
ALIAS_K_RATIO = 0.5
#: least significance of the K-alpha peak an L-alpha reading needs
ALIAS_K_SIGMA = 5.0


def _k_alpha_absent(
    name: str, axis: tuple[float, float], obs: Sequence[_Obs], n: int, tube_kv: float
) -> bool:
    """Whether the alternative line ``name`` (``'Ag La'``) is an element's L-alpha whose
    K-alpha the tube excites (:data:`ALIAS_K_RATIO`) and ``axis`` (gain, offset) puts on
    its channels with no peak of :data:`ALIAS_K_SIGMA` within half a FWHM of it: an
    element whose L-alpha would be there shows its K-alpha as well (argon's K-alpha read
    as Ag L-alpha on a W tube's blank with nothing at 22 keV, where Ag K-alpha would be;
    right axes were doubtful for it: dev 400205, 400253, 1000095)."""
    el, _sep, group = name.partition(" ")
    if group != "La":
        return False
    lines = physics.element_lines(el, tube_kv, min_keV=0.9, min_rel=0.001)
    ka = [ln for ln in lines if ln.siegbahn in ("Ka1", "Ka2")]
    la = sum(ln.rel_intensity for ln in lines if ln.siegbahn in ("La1", "La2"))
    k_rel = sum(ln.rel_intensity for ln in ka)
    if not ka or la <= 0 or k_rel < ALIAS_K_RATIO * la:
        return False
    e_ka = sum(ln.energy_keV * ln.rel_intensity for ln in ka) / k_rel
    g, o = axis
    c = (e_ka - o) / g
    half = 0.5 * float(_fwhm_at(e_ka)) / g
    if not half < c < n - 1 - half:
        return False  # off the axis: nothing to see
    return not any(abs(q.channel - c) <= half and q.significance >= ALIAS_K_SIGMA for q in obs)


def alias_check(
    entries: Sequence[Entry], refs: Sequence[_Ref], gain: float, n: int,
    evidence: tuple[Sequence[_Obs], float] | None = None,
) -> dict[str, Any] | None:
    """Whether another element's main line near a fitted element line would fit as well
    and move the 2-20 keV axis by more than :data:`ALIAS_SHIFT_EV`.

    Parameters
    ----------
    entries : sequence of (reference, channel, channel error, used)
        The fitted peaks of a calibration.
    refs : sequence of _Ref
        The reference lines (the candidates for an alias).
    gain : float
        keV per channel of the calibration (for the channel errors).
    n : int
        Number of channels.
    evidence : (observed peaks, tube voltage kV), optional
        The peaks an alternative reading must show: an L-alpha reading needs its
        element's K-alpha where the tube excites it (:func:`_k_alpha_absent`).

    Returns
    -------
    dict or None
        The ``alias`` check (not critical: the calibration may be right, it is not
        unique); None with fewer than three fitted peaks or no element line in the fit.
    """
    used = [(r, c, err) for r, c, err, u in entries if u]
    if len(used) < 3 or not any(r.kind == "element" for r, _c, _e in used):
        return None
    c = np.array([u[1] for u in used])
    kev = np.array([u[0].keV for u in used])
    s = np.array([math.hypot(gain * u[2], axis_sys_keV(u[0])) for u in used])
    g0, o0 = fit_axis(c, kev, s)
    worst: tuple[float, str] | None = None
    for i, (r, _ci, _ei) in enumerate(used):
        if r.kind != "element":
            continue
        for q_name, q_keV in _alternatives(refs):
            if q_name.split()[0] == r.element or not 0.005 < abs(q_keV - r.keV) <= ALIAS_WINDOW_KEV:
                continue
            alt = kev.copy()
            alt[i] = q_keV
            g1, o1 = fit_axis(c, alt, s)
            res = (o1 + g1 * c - alt) * 1e3
            if np.any(np.abs(res) > np.maximum(RESIDUAL_TOL_EV, 3.0 * s * 1e3)):
                continue  # the other peaks refute the alternative
            if evidence is not None and _k_alpha_absent(q_name, (g1, o1), evidence[0], n, evidence[1]):
                continue  # its element's K-alpha is missing
            shift = axis_difference_eV((g0, o0), (g1, o1), n) or 0.0
            if shift > ALIAS_SHIFT_EV and (worst is None or shift > worst[0]):
                d = (q_keV - r.keV) * 1e3
                worst = (shift, f"{r.name} at {r.keV:.3f} keV may be {q_name} ({d:+.0f} eV)")
    if worst is None:
        return check("alias", True, "no other element's line near a fitted line fits as well")
    return check(
        "alias",
        False,
        f"{worst[1]}: the axis would move by up to {worst[0]:.0f} eV over 2-20 keV",
        shift_eV=worst[0],
    )


def broad_lines_check(
    entries: Sequence[Entry], obs: Sequence[_Obs], axis: tuple[float, float], refs: Sequence[_Ref] = ()
) -> dict[str, Any] | None:
    """Whether the strong fitted element lines, and the anode's Rayleigh lines where the
    axis puts them, are as narrow as the detector makes lines.

    The zero peak's width is the electronic noise; a line at ``E`` keV is at most
    ``sqrt(noise^2 + FANO_SLOPE * E)`` wide (with its components' spread). A fitted
    "line" :data:`BROAD_FACTOR` times broader is a Compton peak or a blend of unknown
    lines, and the calibration that put a line there is in doubt. The detector widens
    lines with energy, so a cleanly fitted main line above an element line bounds its
    width as well (scaled by the law between the two). One anode line may sit
    in a blend (Mo K-alpha with Zr K-beta); all of them (two or more: K-alpha, K-beta) on
    such peaks are their Compton peaks, read by an axis stretched by the Compton shift.

    Parameters
    ----------
    entries : sequence of (reference, channel, channel error, used)
        The fitted peaks.
    obs : sequence of _Obs
        The peaks found in the spectrum.
    axis : (float, float)
        The calibration (gain keV/channel, offset keV).
    refs : sequence of _Ref
        The reference lines (the anode's, kind ``'anode'``, are judged).

    Returns
    -------
    dict or None
        The ``broad lines`` check (not critical); None without a measured zero peak.
    """
    gain, offset = axis
    zero = [(r, c) for r, c, _e, u in entries if u and r.kind == "zero"]
    if not zero or not obs:
        return None
    oz = min(obs, key=lambda q: abs(q.channel - zero[0][1]))
    if oz.edge or oz.significance < 30 or abs(oz.channel - zero[0][1]) > 0.5 * oz.fwhm:
        return None
    noise = oz.fwhm * gain
    # soft lines broaden by incomplete charge collection; the Compton peaks that pose as
    # lines are those of anode lines, above 4 keV
    tube = [(r, (r.keV - offset) / gain) for r in refs
            if r.kind == "anode" and r.keV >= BROAD_MIN_KEV and r.strength >= 0.1]
    # a line with a component within a FWHM of a scattered tube line's is their blend, as
    # broad as both (Sn K-alpha2 0.1 keV above a Ag tube's K-beta: dev seeds 500029, 500118)
    lines = [
        (r, c) for r, c, _e, u in entries
        if u and r.kind == "element" and r.keV >= BROAD_MIN_KEV
        and not any(components_within(r, t, _line_fwhm(noise, r.keV)) for t, _c in tube)
    ]
    # the well-measured lines above a line bound its width too: the detector widens lines
    # with energy, and an axis compressed onto a Compton peak and its Rayleigh partner
    # (Ag K-alpha's read as Cu and Zn K-alpha) shrinks the law's noise term six-fold but
    # its Fano term only 2.5-fold, so only the partner shows the "line" is too broad
    anchors = [
        (r, o) for r, c, _e, u in entries
        if u and r.kind in ("element", "anode") and r.fprimary
        and (o := _width_anchor(obs, c, r, gain)) is not None
    ]
    broad = _broad(lines, obs, gain, noise, anchors)
    judged = [(r, c) for r, c in tube if _line_peak(obs, c) is not None]
    tube_broad = _broad(judged, obs, gain, noise)
    if len(judged) >= 2 and len(tube_broad) == len(judged):
        broad += [f"{b} (the tube's)" for b in tube_broad]
    if not broad:
        return check("broad lines", True, "fitted lines are as narrow as the zero peak's noise allows")
    return check(
        "broad lines",
        False,
        "fitted peaks far broader than the detector makes lines (Compton peaks?): " + ", ".join(broad[:3]),
    )


def _line_fwhm(noise: float, keV: float) -> float:
    """FWHM (keV) of one line at ``keV`` on a detector with electronic ``noise`` (keV)."""
    return math.sqrt(noise**2 + physics.FANO_SLOPE * keV)


def _width_anchor(obs: Sequence[_Obs], channel: float, ref: _Ref, gain: float) -> _Obs | None:
    """The peak of main line ``ref`` at ``channel`` when it measures the detector's width
    there: a clean fit (not cut, not collapsed onto its top: :func:`width_measured`), no
    narrower than the line widths check lets a line be; None otherwise."""
    o = _line_peak(obs, channel)
    clean = (
        o is not None and o.ok and not o.edge and width_measured(o, ref, gain)
        and o.widest * gain >= FITTED_WIDTH_FLOOR * math.sqrt(physics.FANO_SLOPE * ref.keV)
    )
    return o if clean else None


def _law_fwhm(noise: float, ref: _Ref) -> float:
    """FWHM (keV) of the peak of line group ``ref`` (:func:`_line_fwhm` with its
    components' spread)."""
    return math.hypot(_line_fwhm(noise, ref.keV), _cluster_fwhm(ref))


def _line_peak(obs: Sequence[_Obs], channel: float) -> _Obs | None:
    """The peak (30 sigma or more) within half its FWHM of ``channel``; None when none."""
    o = min(obs, key=lambda q: abs(q.channel - channel))
    return o if o.significance >= 30 and abs(o.channel - channel) <= 0.5 * o.fwhm else None


def _broad(
    lines: Sequence[tuple[_Ref, float]],
    obs: Sequence[_Obs],
    gain: float,
    noise: float,
    anchors: Sequence[tuple[_Ref, _Obs]] = (),
) -> list[str]:
    """The lines (reference, channel) whose peak (:func:`_line_peak`) is more than
    :data:`BROAD_FACTOR` times broader than the detector makes a line with electronic
    ``noise`` (FWHM, keV), or than a line of ``anchors`` (reference, its peak) at a
    higher energy makes it (its width at half prominence, scaled by the law's ratio
    between the two lines):
    ``'Fe Ka 320 eV > 180 eV'``."""
    out = []
    for r, c in lines:
        o = _line_peak(obs, c)
        if o is None:
            continue
        expect = _law_fwhm(noise, r)
        for a, oa in anchors:
            if oa is not o and a.keV > r.keV:
                expect = min(expect, oa.widest * gain * _law_fwhm(noise, r) / _law_fwhm(noise, a))
        if o.fwhm * gain > BROAD_FACTOR * expect:
            out.append(f"{r.name} {o.fwhm * gain * 1e3:.0f} eV > {expect * 1e3:.0f} eV")
    return out


#: the continuum above a "line" below this share of the continuum beside it below: a cliff
CLIFF_RATIO = 0.2
#: where the continuum beside a line is read: from 1.5 to 3.5 detector FWHM (at the line's
#: energy) beyond its outermost components, where its own flanks (a Gaussian keeps 0.2 %
#: of its height at 1.5 FWHM) no longer count. Read from 1 fitted FWHM of the peak's
#: centre, a K-alpha's heavier low flank (K-alpha2 lies below K-alpha1: 67 eV for Sr) made
#: a cliff of a line on a continuum of a few counts (dev 400047: Sr K-alpha, "34 below,
#: 4.9 above"); the detector's width, not the fitted one, because a hump fits broad
#: (0.56 keV behind 100 um of Cu) and its bands moved off it
CLIFF_BAND_FWHM = (1.5, 3.5)
#: least share of the "line"'s top that the continuum below it keeps on a filter's hump:
#: the hump is the continuum itself, rising to the edge (behind 100 um of Cu or Ni, the
#: narrowest humps of common filters, the continuum 0.3-0.6 keV below the K edge keeps
#: 0.45-0.75 of its value at the edge; 0.25-0.55 behind 100 um of Ti), where a line's top
#: stands far above its background (dev 400047: Sr K-alpha's 1000 counts above weak Au
#: L-gamma lines, 34 counts, on an empty continuum). Without it 12 of 174 true main lines
#: of test seeds 5000-5199 sat at "cliffs"; with it none, and every strong hump of
#: tests/calibration/test_calibration_consistency.py is one
CLIFF_HUMP_SHARE = 0.25


def cliff_check(
    entries: Sequence[Entry], obs: Sequence[_Obs], gain: float, fwhm6: float
) -> dict[str, Any] | None:
    """Whether a fitted element line sits at a cliff of the continuum.

    A primary filter passes the continuum up to its absorption edge and kills it above:
    the spectrum there rises to a hump that ends at the edge, narrow enough to pass for a
    line. A fluorescence line has counts on both sides (its background, its companions);
    a "line" with the continuum above it (:data:`CLIFF_BAND_FWHM`) far emptier than below,
    where the continuum below is a good part of the "line"'s top (a hump, not a line on
    its background: :data:`CLIFF_HUMP_SHARE`), is such a cliff.

    Parameters
    ----------
    entries : sequence of (reference, channel, channel error, used)
        The fitted peaks.
    obs : sequence of _Obs
        The observed peaks.
    gain : float
        Gain (keV/channel) of the axis judged: places a line's components about its centre.
    fwhm6 : float
        Detector FWHM (keV) at 5.9 keV: the width the bands beside a line are counted in.

    Returns
    -------
    dict or None
        The ``continuum edge`` check (not critical); None without fitted element lines.
    """
    cliffs, seen = [], False
    near, far = CLIFF_BAND_FWHM
    for r, c, _e, u in entries:
        # main lines only: a companion sits beside its stronger main line
        if not u or r.kind != "element" or not r.fprimary or not obs:
            continue
        o = min(obs, key=lambda q: abs(q.channel - c))
        y, w = o.spec.y, max(float(_fwhm_at(r.keV, fwhm6)) / gain, 2.0)
        comps = [c + (ek - r.keV) / gain for ek, _rel in r.components]
        ch = np.arange(y.size)
        free = np.ones(y.size, dtype=bool)  # the continuum: away from the other peaks
        for q in obs:
            if q is not o and q.significance >= 5.0:
                free &= np.abs(ch - q.channel) > 1.5 * max(q.widest, 2.0)
        c_lo, c_hi = min(comps), max(comps)
        lo_m = free & (ch >= c_lo - far * w) & (ch <= c_lo - near * w)
        hi_m = free & (ch >= c_hi + near * w) & (ch <= c_hi + far * w)
        lo, hi = y[lo_m], y[hi_m]
        if lo.size < 2 or hi.size < 2:
            continue
        seen = True
        top = float(y[min(max(int(round(c)), 0), y.size - 1)])
        hump = lo.mean() >= CLIFF_HUMP_SHARE * top
        if lo.sum() >= 25.0 and hi.mean() < CLIFF_RATIO * lo.mean() and hump:
            cliffs.append(f"{r.name} (continuum {lo.mean():.0f} below, {hi.mean():.1f} above)")
    if not seen:
        return None
    if not cliffs:
        return check("continuum edge", True, "no fitted line sits at a cliff of the continuum")
    return check(
        "continuum edge",
        False,
        "fitted line(s) at a cliff of the continuum, where a filter's absorption edge ends a "
        "hump that is no line: " + ", ".join(cliffs[:3]),
    )


#: bands (fractions of the tube voltage) where the scattered continuum is compared: its
#: tail just below the voltage, a reference band below that, and the range just above
#: (past a margin of the detector's resolution); medians, so that lines in a band do not
#: count
TAIL_BAND = (0.86, 0.96)
REFERENCE_BAND = (0.66, 0.76)
ABOVE_BAND = (1.04, 1.15)
#: the continuum's tail must hold at least this share of the reference band's counts per
#: channel (Kramers' law with a silicon detector's efficiency gives 0.1-0.6 at the true
#: axis of synthetic spectra, 25-50 kV; an axis 13 % short, under 0.01), and the range
#: above the voltage at most this share of the tail's (pile-up alone lives there; an axis
#: 13 % long puts 0.13-0.17 there)
TAIL_MIN_RATIO = 0.01
ABOVE_MAX_RATIO = 0.08


def continuum_end_check(y: np.ndarray, gain: float, offset: float, tube_kv: float) -> dict[str, Any] | None:
    """Whether the continuum ends at the tube voltage under the calibration (Duane-Hunt).

    No photon the tube makes is harder than its voltage: the scattered continuum falls to
    nothing there and not before. An axis compressed or stretched around the right lines
    (a whole line pattern taken for another element's: Rh L and K read as Mo's) puts the
    end of the continuum well below or above the voltage, whatever its lines fit.

    Parameters
    ----------
    y : numpy.ndarray
        Spectrum (counts per channel).
    gain, offset : float
        Calibration (keV per channel, keV at channel 0).
    tube_kv : float
        Tube voltage (kV).

    Returns
    -------
    dict or None
        The ``continuum end`` check (not critical: an electronic upper threshold can end a
        spectrum early); None when the axis ends before the voltage or the continuum's
        bands hold too few counts to tell.
    """
    e = offset + gain * np.arange(y.size)
    if e[-1] < ABOVE_BAND[1] * tube_kv:
        return None

    def band(lo: float, hi: float, pad_keV: float = 0.0) -> np.ndarray:
        return y[(e >= lo * tube_kv + pad_keV) & (e < hi * tube_kv)]

    ref, tail = band(*REFERENCE_BAND), band(*TAIL_BAND)
    above = band(*ABOVE_BAND, pad_keV=3.0 * float(_fwhm_at(tube_kv)))
    if min(ref.size, tail.size, above.size) < 5 or float(np.median(ref)) * tail.size < 300.0:
        return None
    m_ref, m_tail, m_above = (float(np.median(b)) for b in (ref, tail, above))
    if m_tail < TAIL_MIN_RATIO * m_ref:
        return check(
            "continuum end", False,
            f"the continuum ends before the tube voltage ({tube_kv:g} kV): at "
            f"{TAIL_BAND[0] * tube_kv:.1f}-{TAIL_BAND[1] * tube_kv:.1f} keV it holds "
            f"{m_tail / m_ref:.3f} of its counts lower down; the axis (or the tube voltage) is wrong",
        )
    if m_tail * above.size >= 100.0 and m_above > ABOVE_MAX_RATIO * m_tail:
        return check(
            "continuum end", False,
            f"the continuum goes on above the tube voltage ({tube_kv:g} kV) with "
            f"{m_above / m_tail:.2f} of its counts below it; the axis (or the tube voltage) is wrong",
        )
    return check("continuum end", True, f"the continuum ends at the tube voltage ({tube_kv:g} kV)")
