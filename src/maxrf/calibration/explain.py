"""How much of a spectrum a calibration hypothesis explains (part of step 4 of
:func:`auto_calibrate`).

A right calibration explains every strong narrow peak: as a matched line, a weaker line of
a matched element or of the anode, the Compton side of a scattered anode line, a detector
escape peak or a sum (pile-up) peak of matched peaks. A wrong one leaves strong peaks
unexplained, or puts peaks at negative energies or above the tube voltage. The zero peak
is recognised by its width: the electronic noise alone, narrower than any line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maxrf import physics
from maxrf.calibration.match import _companion_present, _fwhm_at
from maxrf.calibration.observe import _Obs
from maxrf.calibration.references import _BLEND_THETA, _FWHM6_FLOOR, _Ref
from maxrf.errors import ParameterError

#: fraction of the narrowest possible line width (silicon's Fano limit) below which a
#: peak is noise, not a line the hypothesis leaves unexplained: weak (8-9 sigma)
#: fluctuations on a 45 kV continuum, 74-108 eV wide at 15-17 keV where lines are 200 eV
#: wide, outweighed a Rh blank's true axis (dev seed 400071)
NARROWEST_LINE = 0.6


#: significance (sigma) from which a peak below the zero peak or above the tube voltage
#: counts against a hypothesis: no line is there
NEGATIVE_PEAK_SIGMA = 15.0


def explained_energies(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float, offset: float,
    anode: str | None, tube_kv: float,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Energies (keV) a hypothesis explains beside its matched peaks, and energy ranges
    (keV) of the Compton sides of the anode's scattered lines."""
    present = {refs[r].element for _, r in pairs if refs[r].element is not None}
    lines = [r.keV for r in refs if r.element in present and r.kind != "zero"]
    for el in present:  # weak lines of the matched elements (K-beta2, L-gamma...)
        lines += [ln.energy_keV for ln in physics.element_lines(el, tube_kv, min_keV=0.9, min_rel=0.01)]
    ranges: list[tuple[float, float]] = []
    if anode is not None:
        for ln in physics.anode_lines(anode, tube_kv):
            lines.append(ln.energy_keV)
            ranges.append(compton_side(ln.energy_keV))
    e_m = np.array([offset + gain * obs[k].channel for k, _ in pairs])
    sums = sum_energies(e_m, np.array([obs[k].significance for k, _ in pairs]))
    base = np.asarray(lines + [e for e in e_m if e > 0.5], dtype=np.float64)
    esc = np.asarray(physics.escape_energy(base)) if base.size else base
    return np.concatenate([base, esc, sums]), ranges


def sum_energies(keV: np.ndarray, significance: np.ndarray) -> np.ndarray:
    """Energies (keV) of the sum (pile-up) peaks of the strong peaks at ``keV`` (a tenth
    of the strongest ``significance`` or more, above 0.5 keV), every pair and each with
    itself."""
    strong = keV[(significance >= 0.1 * significance.max()) & (keV > 0.5)] if keV.size else keV
    return (strong[:, None] + strong[None, :]).ravel()


def bump_not_line(width_keV: float, keV: float) -> bool:
    """Whether a peak ``width_keV`` wide (FWHM) at ``keV`` is broader than any detector
    makes a line there: a scatter or continuum bump (a filter's transmission window)."""
    return width_keV > 1.6 * float(_fwhm_at(keV, 0.2))


def unexplained_weight(found: Sequence[tuple[int, float]], obs: Sequence[_Obs]) -> float:
    """Summed score weight of the peaks :func:`unexplained_peaks` found, each by its factor."""
    return float(sum(factor * obs[k].weight for k, factor in found))


def unexplained_peaks(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float, offset: float,
    anode: str | None, tube_kv: float,
) -> list[tuple[int, float]]:
    """The narrow peaks a hypothesis leaves unexplained, as (obs index, weight factor): 2
    for a peak at a negative energy (below the zero peak) or above the tube voltage."""
    matched = {k for k, _ in pairs}
    known, ranges = explained_energies(pairs, obs, refs, gain, offset, anode, tube_kv)
    out: list[tuple[int, float]] = []
    for k, o in enumerate(obs):
        if k in matched:
            continue
        e = offset + gain * o.channel
        if e < -0.2 or e > tube_kv + 2.0 * float(_fwhm_at(tube_kv)):
            if o.significance >= NEGATIVE_PEAK_SIGMA:
                out.append((k, 2.0))
            continue
        w = o.fwhm * gain
        if e < 0.9 or bump_not_line(w, e):
            continue  # too soft to judge, or a scatter / continuum bump
        if o.ok and w < NARROWEST_LINE * float(_fwhm_at(e, _FWHM6_FLOOR)):
            continue  # narrower than any line there: noise, no peak a line must explain
        tol = 0.5 * float(_fwhm_at(e))
        if known.size and np.min(np.abs(known - e)) <= tol:
            continue
        if any(lo <= e <= hi for lo, hi in ranges):
            continue
        out.append((k, 1.0))
    return out


def compton_side(line_keV: float) -> tuple[float, float]:
    """Energies (keV) a scattered tube line at ``line_keV`` covers with its Compton peak:
    from that peak at 180 degrees, less a FWHM, up to the line."""
    return float(physics.compton_shift(line_keV, 180.0)) - float(_fwhm_at(line_keV)), float(line_keV)


#: least strength (relative to its family's strongest line) of a tube line whose Compton
#: peak an element line is not measured on (:func:`on_compton`): K-alpha, L-alpha and
#: L-beta, not K-beta (Mn K-alpha on a Cr tube's K-beta Compton peak is measured well)
COMPTON_BAND_STRENGTH = 0.3
#: half-width (degrees) of the angles about the measured one a Compton peak is placed at:
#: the Compton profile and the detector's solid angle move it off the single-angle formula
COMPTON_BAND_DEG = 10.0


def compton_bands(refs: Sequence[_Ref], theta: float | None) -> list[tuple[float, float]]:
    """Energy spans (keV) where the Compton peaks of the tube's main lines in ``refs``
    lie: at ``theta`` (degrees) +- :data:`COMPTON_BAND_DEG`, or over the geometries a
    scatter blend spans when the angle is unknown (None)."""
    if theta is None:
        lo_deg, hi_deg = min(_BLEND_THETA), max(_BLEND_THETA)
    else:
        lo_deg, hi_deg = theta - COMPTON_BAND_DEG, min(theta + COMPTON_BAND_DEG, 180.0)
    return [
        (float(physics.compton_shift(e, hi_deg)), float(physics.compton_shift(e, lo_deg)))
        for q in refs if q.kind in ("anode", "scatter") and q.strength >= COMPTON_BAND_STRENGTH
        for e, _ in q.components
    ]


def on_compton(keV: float, bands: Sequence[tuple[float, float]], fwhm6: float) -> bool:
    """Whether a line at ``keV`` lies within a detector FWHM of one of the Compton
    ``bands`` (keV; :func:`compton_bands`).

    Such a line's window fit (:func:`~maxrf.calibration.precise._line_fit`) holds no
    Compton peak, whose broad flank moves its centre: the axis fit weighs it as the tube's
    own soft lines on their Compton peaks (``precise.CENTRE_SYS_KEV["anode soft"]``).
    Ni K-beta on a W tube's L-alpha Compton peak and Zn K-beta on L-beta's sat 16-20 eV
    low and, weighed as free lines, took the axis 34 eV off (dev seed 990161; 8 eV
    weighed so). Kept out of the axis fit instead, the line left a right axis behind a Ni
    filter too little to stand on (held-out 980070: failed, 3 eV off), where the filter
    takes the tube line and its Compton peak. On the dev seeds 400000-400299,
    500000-500599 and 990000-990299: within 10 eV 1002 of 1200 refined from the true axis
    (1000 before), 983 calibrated automatically (980), none more than 30 eV off called
    good. Lines on a K-beta's Compton peak are weighed as before (Mn K-alpha on a Cr
    tube's is measured well)."""
    fw = float(_fwhm_at(keV, fwhm6))
    return any(lo - fw < keV < hi + fw for lo, hi in bands)


def refute_missing_companions(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float, offset: float,
    n: int,
) -> set[tuple[int, int]]:
    """Matches of strong main lines (K-alpha, L-alpha...) whose companions (K-beta,
    L-beta...) are missing or far too weak where the hypothesis puts them: not that line.
    A companion masked by a peak matched to another line gives no verdict, nor does the
    companion of a scattered tube line (a primary filter may absorb it)."""
    refuted: set[tuple[int, int]] = set()
    matched_refs = {r for _, r in pairs}
    obs_e = offset + gain * np.array([ob.channel for ob in obs])
    obs_sig = np.array([ob.significance for ob in obs])
    # the Compton sides of the tube's matched scatter blends mask what lies under them
    # as a matched peak does (Co K-beta under a Cu tube's K-alpha Compton peak)
    compton_sides = [compton_side(min(x[0] for x in refs[r].components)) for _, r in pairs
                     if refs[r].kind == "scatter"]
    for p in pairs:
        k, r = p
        prim = refs[r]
        if not prim.fprimary or prim.element is None:
            continue
        if prim.kind in ("anode", "scatter"):
            # the tube's scattered lines pass the primary filter: its absorption edge
            # between K-alpha and K-beta (L-alpha and L-beta) can take the companion away
            # (Cu's K edge at 8.98 keV between W L-alpha 8.40 and L-beta 9.67 keV)
            continue
        for q, ref in enumerate(refs):
            if ref.element != prim.element or ref.family != prim.family or ref.fprimary:
                continue
            rel = ref.strength / max(prim.strength, 1e-9)
            expected = obs[k].significance * rel
            if rel < 0.05 or expected < 30.0:
                continue
            if q in matched_refs:
                got = max(obs[kk].significance for kk, rr in pairs if rr == q)
                if got < 0.05 * expected:
                    refuted.add(p)
                    break
                continue
            c = (ref.keV - offset) / gain
            if not (2 <= c <= n - 3):
                continue
            fw_q = float(_fwhm_at(ref.keV))
            if any(abs(obs_e[kk] - ref.keV) <= 1.0 * fw_q and kk != k for kk, _ in pairs):
                continue
            if any(lo <= ref.keV <= hi for lo, hi in compton_sides):
                continue
            if not _companion_present(obs[k], ref, rel, c, gain, obs_e, obs_sig, expected):
                refuted.add(p)
                break
    return refuted


#: significance of an escape peak relative to its parent's, over the escape fraction of
#: physics (Reed & Ware): the escape sits on a lower background than its parent (observed
#: 2-4x in synthetic blanks; 2 keeps the expectation a floor)
ESCAPE_SIGNIFICANCE_GAIN = 2.0
#: parent energies (keV) whose escape peak is judged: above Si's K edge (1.84 keV) with a
#: margin, and below where the escape fraction becomes tiny
ESCAPE_PARENT_KEV = (2.2, 12.0)


def missing_escapes(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float, offset: float,
) -> set[tuple[int, int]]:
    """Matches of strong peaks whose Si escape peak (the line less Si K-alpha), expected at
    >= 6 sigma, shows nothing (< 3 sigma) where the hypothesis puts it: not that line.

    The escape fraction falls with energy and the escape keeps its 1.74 keV spacing: a
    wrong gain puts the strongest peak at a wrong line and its escape where nothing is
    (a Cr blank read as Ca K-alpha leaves 1.95 keV empty while the 3.6 keV escape of Cr
    K-alpha is read as Cl K-alpha).
    """
    out: set[tuple[int, int]] = set()
    for k, r in pairs:
        ob, ref = obs[k], refs[r]
        if ref.kind == "zero" or not ESCAPE_PARENT_KEV[0] <= ref.keV <= ESCAPE_PARENT_KEV[1]:
            continue
        expected = ob.significance * ESCAPE_SIGNIFICANCE_GAIN * float(physics.escape_fraction(ref.keV))
        if expected < 6.0:
            continue
        e_esc = float(physics.escape_energy(ref.keV))
        tol = max(1.0, 0.3 * float(_fwhm_at(e_esc)) / gain)
        ev = ob.spec.line_evidence((e_esc - offset) / gain, tol)
        if np.isfinite(ev) and ev < 3.0:
            out.add((k, r))
    return out


def escape_of_stronger(obs: Sequence[_Obs], k: int, gain: float, offset: float, blends: bool = False) -> bool:
    """Whether peak ``k`` lies where a stronger observed peak's Si escape falls (1.74 keV
    below it, within a third of a FWHM) and is no higher than that escape can be: its
    parent's height times the escape fraction and their widths' ratio, with a margin of
    :data:`ESCAPE_HEIGHT_MARGIN` (heights, not significances: the escape of a line near 2
    keV sits on no background, its significance 36x its parent's times the fraction).
    With ``blends``, a parent wider than one line at its energy is a blend whose lines lie
    up to half its excess width from its centre, and so may their escapes.

    A strong line near 2 keV (Zr L-alpha, Pb M-alpha) puts its escape near 0.3 keV, where
    a zero peak is looked for (dev seed 400298: Zr L-alpha's escape, 1.7 % of its height
    for 1.8 % expected, read as a zero peak 0.31 keV off; a right axis failed). Blended
    with Ca K-alpha's own escape, Zr L-alpha made one peak 42 eV below it, whose escape
    fell 46 eV from Zr L-alpha's (held-out 1290009, looked at after: a right axis failed)."""
    o = obs[k]
    e = offset + gain * o.channel
    for j, parent in enumerate(obs):
        e_p = offset + gain * parent.channel
        if j == k or not parent.height > o.height:
            continue
        reach = 0.3 * float(_fwhm_at(max(e, 0.1)))
        if blends:
            reach += 0.5 * max(gain * parent.fwhm - float(_fwhm_at(max(e_p, 0.1))), 0.0)
        if abs(float(physics.escape_energy(e_p)) - e) > reach:
            continue
        # (no escape below Si's K edge: the fraction is 0 there)
        if _no_higher_than(o, parent, float(physics.escape_fraction(e_p)), ESCAPE_HEIGHT_MARGIN):
            return True
    return False


def _no_higher_than(o: _Obs, parent: _Obs, share: float, margin: float) -> bool:
    """Whether peak ``o`` is no higher than ``share`` of peak ``parent``'s area makes it at
    its own width (the parent's height times the share and their widths' ratio), with a
    ``margin``: a peak that may be that share of the parent alone."""
    return o.height <= margin * share * parent.fwhm / max(o.fwhm, 1e-9) * parent.height


#: how much higher than its tabulated share of its family's strongest line (xraydb) a peak
#: on one of the tube's minor scattered lines may stand and still be taken for that line:
#: the air path, a filter and the sample absorb the two lines differently
TUBE_MINOR_MARGIN = 3.0


def on_tube_minor_line(obs: Sequence[_Obs], k: int, refs: Sequence[_Ref], gain: float, offset: float) -> bool:
    """Whether peak ``k`` lies within a detector FWHM of a minor scattered line of the tube
    (:attr:`_Ref.minor_keV` of an anode line: Mo L-ell beside Mo L-alpha) and is no
    higher than that line can be: the highest peak at its family's strongest line times
    their tabulated ratio and the peaks' widths' ratio, with a margin of
    :data:`TUBE_MINOR_MARGIN`. Such a peak may be the tube's line alone: a sample line
    read there cannot anchor the axis (a Mo blank's L-ell Rayleigh and Compton blend, 200
    counts, read as P K-alpha 21 eV from it and weighed at 2 eV, pulled a right axis 17
    eV off at 2 keV and was called good; dev seed 1200123)."""
    o = obs[k]
    e = offset + gain * o.channel
    fw = float(_fwhm_at(max(e, 0.1)))
    for r in refs:
        if r.kind not in ("anode", "scatter") or r.strength <= 0:
            continue
        share = sum(s for m, s in zip(r.minor_keV, r.minor_strength) if abs(m - e) < fw) / r.strength
        if share <= 0:
            continue
        tol = 0.5 * float(_fwhm_at(r.keV)) + r.tol_keV
        parents = [q for q in obs if abs(offset + gain * q.channel - r.keV) <= tol]
        if not parents:
            continue  # the tube's line is not seen (a filter): nor are its minor lines
        if _no_higher_than(o, max(parents, key=lambda q: q.height), share, TUBE_MINOR_MARGIN):
            return True
    return False


#: least height of a tube line's peak, as a share of the peak read as its Si escape: the
#: escape fraction is at most a few per cent (Reed & Ware), so a parent lower than half
#: its "escape" leaves room for any blend of the escape with a sample's line and still
#: shows the "escape" is some line's own peak
ORPHAN_ESCAPE_RATIO = 0.5


def orphan_escapes(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float, offset: float,
    n: int,
) -> set[tuple[int, int]]:
    """Matches of peaks to a tube line's Si escape (kind ``'escape'``) whose parent line,
    where the hypothesis puts it on the axis, has no peak, or one lower than
    :data:`ORPHAN_ESCAPE_RATIO` times the escape's: not that escape.

    An escape peak holds a few per cent of its parent's photons. A Cr blank's scattered
    K-alpha (11848 sigma) read as the escape of Cr K-beta, with Cr K-alpha put on a
    peak of 22 sigma, explained every peak on an axis 4.7 keV off (dev seed 400172).
    """
    out: set[tuple[int, int]] = set()
    by_name = {r.name: r for r in refs}
    for k, r in pairs:
        ref = refs[r]
        parent = by_name.get(ref.name.removesuffix(" escape")) if ref.kind == "escape" else None
        if parent is None:
            continue
        c = (parent.keV - offset) / gain
        if not 0 <= c < n:
            continue  # the parent is off the axis: nothing to compare
        near = [o for o in obs if abs(o.channel - c) <= 0.5 * max(o.fwhm, 2.0)]
        if not near or max(o.height for o in near) < ORPHAN_ESCAPE_RATIO * obs[k].height:
            out.add((k, r))
    return out


#: how much higher than physics' escape fraction (Reed & Ware) an observed escape peak may
#: stand, against its parent, and still be taken for that escape (noise, the parent's
#: blend with neighbours)
ESCAPE_HEIGHT_MARGIN = 3.0


#: energy (keV) below which a channel is beyond the zero peak (its noise FWHM is at most
#: about 0.12 keV): such channels hold no counts in any spectrum
NEGATIVE_KEV = -0.3


def counts_below_zero(y: np.ndarray, gain: float, offset: float) -> bool:
    """Whether a calibration puts counts at negative energies beyond the zero peak: the
    channels below :data:`NEGATIVE_KEV` hold on average more than 5 % of the typical
    counts of the channels at 1-15 keV (and more than half a count). Real spectra hold
    none there (the vendored ones: at most 0.03 a channel); an offset of -3 keV that
    puts the scattered continuum at negative energies is wrong."""
    e = offset + gain * np.arange(y.size)
    neg = y[e < NEGATIVE_KEV]
    pos = y[(e >= 1.0) & (e <= 15.0)]
    if neg.size < 5 or pos.size < 5:
        return False
    level = float(np.mean(neg))
    return level > 0.5 and level > 0.05 * float(np.median(pos))


def compton_pair_ok(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float, offset: float,
    n: int | None = None,
) -> bool:
    """Whether the matched anode K-alpha and K-beta Rayleigh lines (or L-alpha, L-beta)
    each have a broad Compton peak below them at one scattering angle: the angle the
    K-alpha's Compton peak gives predicts the K-beta's within a third of its width.

    Two Rayleigh lines alone fit any straight line; their Compton partners, shifted by
    ``E**2 / m_e c**2 (1 - cos theta)`` (more for the harder line), test the gain. With
    the axis' length ``n`` (channels), a K-beta beyond its end whose Compton peak is on it
    counts as matched: that peak alone tests the gain (an Ag blank whose axis ends at 24
    keV, between Ag K-beta's Compton peak and its Rayleigh line; held-out 990079).
    """
    anode = [(k, refs[r]) for k, r in pairs if refs[r].kind == "anode" and refs[r].strength >= 0.1]
    main = [(k, r) for k, r in anode if r.fprimary]
    if not main:
        return False
    fam = main[0][1].family
    second = [(k, r) for k, r in anode if not r.fprimary and r.family == fam]
    if not second and n is not None:
        end = offset + gain * (n - 1)
        second = [(-1, r) for r in refs if r.kind == "anode" and r.strength >= 0.1 and r.family == fam
                  and not r.fprimary and r.element == main[0][1].element and r.keV > end]
    if not second:
        return False
    e_obs = offset + gain * np.array([o.channel for o in obs])
    w_obs = gain * np.array([o.fwhm for o in obs])

    def compton_of(ref: _Ref) -> int | None:
        lo = float(physics.compton_shift(ref.keV, 180.0)) - 0.5 * float(_fwhm_at(ref.keV))
        hi = ref.keV - 1.0 * float(_fwhm_at(ref.keV))
        inside = [k for k in range(len(obs)) if lo <= e_obs[k] <= hi and obs[k].significance >= 8.0]
        return max(inside, key=lambda k: obs[k].significance) if inside else None

    ka, kb = main[0][1], max(second, key=lambda p: p[1].strength)[1]
    ca, cb = compton_of(ka), compton_of(kb)
    if ca is None or cb is None or ca == cb:
        return False
    try:
        theta = float(physics.detector_angle(e_obs[ca], ka.keV))
    except ParameterError:  # no angle scatters K-alpha to that energy
        return False
    if not 0.0 < theta < 180.0:
        return False
    predicted = float(physics.compton_shift(kb.keV, theta))
    return bool(abs(e_obs[cb] - predicted) <= w_obs[cb] / 3.0)
