"""The unexplained-peaks check of a calibration: strong narrow peaks the axis puts at no
known line, escape, sum or Compton energy, or leaves to an uncommon element only."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.calibration.match import _fwhm_at
from maxrf.calibration.observe import _Obs
from maxrf.calibration.quality import check
from maxrf.calibration.references import _Ref

#: how many standard uncertainties a peak may be off the line that explains it
UNEXPLAINED_Z = 3.0
#: significance (sigma) from which a peak must be explained; a spectrum whose fitted
#: peaks are weaker lowers it to their median, down to STRONG_FLOOR_SIGMA
STRONG_SIGMA = 50.0
#: the lowest significance (sigma) a peak must be explained from
STRONG_FLOOR_SIGMA = 15.0
#: two lines of one element closer than this many detector sigmas make one peak (two
#: Gaussians so close have a single maximum)
BLEND_SIGMAS = 2.0
#: two elements' lines closer than this fraction of a FWHM make one peak: either may be
#: alone, and the blend's centre then explains a peak only where the two are merged
OTHERS_BLEND_FWHM = 0.6
#: least significance of the peak at a companion line's main line (K-alpha for K-beta),
#: as a share of the peak the companion would explain: companions are weaker than their
#: main line, and this leaves room for absorption between the two and for significance
#: growing slower than counts. The strongest peak of a Cr blank was explained as Sn
#: L-gamma1 with nothing at Sn L-alpha, on an axis 4.7 keV off (dev seed 400172)
MAIN_SHARE = 0.3
#: the data's significance above the baseline at a main line with no peak of its own, as
#: a share of that at the peak its companion would explain, that shows the main line there
MAIN_EVIDENCE_SHARE = 0.1
#: least significance of the peak at an element's strongest reference line, as a share of
#: a peak at a main line of another of its families, for that element to explain the
#: peak: the L lines of a K element near 1 keV stand on little continuum and come out as
#: strong as its K-alpha or stronger (Zn L 9915 sigma beside Zn K-alpha's 6552, As L 3326
#: beside 3200; dev 1010110, 1000103, right axes doubtful for an "uncommon element")
OTHER_FAMILY_SHARE = 0.3


def unexplained_check(
    obs: Sequence[_Obs],
    gain: float,
    offset: float,
    refs: tuple[_Ref, ...],
    anode_ref: _Ref | None,
    tube_kv: float,
    sigma_eV: float | np.ndarray | None = None,
    fitted: Sequence[float] = (),
) -> dict[str, Any]:
    """Strong narrow peaks at no known line, escape, sum or Compton energy.

    With ``sigma_eV`` (the axis' uncertainty, eV: one, or one per peak at its energy) a peak must lie
    within :data:`UNEXPLAINED_Z` combined uncertainties (axis, peak centre, line centroid) of a
    reference line (the common elements', components merged as the detector sees them), between the
    components of another element's main line group (K-alpha1,2...) or that close to them; or be the
    escape peak of a far stronger observed peak. An axis that claims 7 eV and leaves peaks 25 eV from
    the lines it names is wrong (Hg L-beta taken for Bi L-alpha, Ag K-beta for Cd K-alpha). Without
    ``sigma_eV``: half a FWHM. One such peak passes (an artefact, an unlisted line) unless it is more
    significant than every peak the fit uses (channels ``fitted``) but the strongest: a fit that names
    weaker peaks and leaves out one of the spectrum's main peaks took the wrong lines (Fe K-alpha read
    as Cd L-alpha, 10 keV off at 20 keV, leaves a Ag tube's L-alpha out).

    A peak is strong from :data:`STRONG_SIGMA`, or from the median significance of the fitted peaks
    where those are weaker (not below :data:`STRONG_FLOOR_SIGMA`): in a faint spectrum a wrong axis
    leaves main peaks of 20-40 sigma at no line (As K-alpha read as Cr K-alpha, the gain halved, 9.7 keV
    off and "good" with every fitted peak below 90 sigma; dev seed 1020184). A peak anywhere between the
    two lines of an element's K-alpha doublet is that line's. A companion line (K-beta, L-beta, L-gamma)
    explains a peak only where its main line shows (:data:`MAIN_SHARE`, :data:`MAIN_EVIDENCE_SHARE`),
    and a tube line's escape only beside its far stronger parent, as any escape, never by its place
    alone (a Cr blank's scattered K-alpha as Sn L-gamma1 with no Sn L-alpha, or as the escape of a
    K-beta with no peak, on an axis 4.7 keV off; dev seed 400172). A sum peak, too, explains only a peak
    a third as significant as both its parents or less. Two elements' lines closer than
    :data:`BLEND_SIGMAS` make one peak between them where both elements show elsewhere
    (:func:`_seen_elsewhere`). Zn L beside Zn K-alpha is Zn's, not an uncommon element's
    (:data:`OTHER_FAMILY_SHARE`).
    """
    refs = tuple(r for r in refs if r.kind != "escape")  # escapes: beside their parent (_known)
    ref_e, ref_el = np.array([r.keV for r in refs]), np.array([r.element or "" for r in refs])
    doublets = _doublet_spans(refs)
    ref_sys = np.array([r.sys_keV + r.tol_keV for r in refs])
    others, others_el = _other_groups(tube_kv, refs)
    sig = np.array([o.significance for o in obs])
    obs_e = np.array([offset + gain * o.channel for o in obs])
    sigma = None if sigma_eV is None else np.broadcast_to(np.asarray(sigma_eV, dtype=np.float64), (len(obs),))
    main_sig, main_ev = _main_line_support(refs, obs_e, sig, max(0.9, offset), obs, gain, offset)
    at_peaks = _peaks_at(refs, obs, (obs_e, sig), gain, sigma, ref_sys)  # once: both read it
    elsewhere, main_of = _seen_elsewhere(refs, at_peaks > 0), _main_peaks(refs, at_peaks)
    sums = _sum_peaks(obs_e, sig)
    # the tube's Rayleigh lines, those inside a Compton blend too (Cu K-alpha, W L-gamma)
    anode_e = [max(c[0] for c in r.components) for r in refs if r.kind in ("anode", "scatter")]
    minor = _minor_lines(tuple(sorted({r.element for r in refs if r.kind == "element"})), tube_kv)
    used, strong = _strong_floor(obs, fitted)
    bad, top, exotic = [], 0.0, 0.0
    for k, (o, ek) in enumerate(zip(obs, obs_e)):
        # broad for a line at its energy under this calibration: scatter or continuum
        if o.significance < strong or ek < 0.9 or ek > tube_kv or o.fwhm * gain > _line_fwhm_limit(ek):
            continue
        half = 0.5 * float(_fwhm_at(ek))
        tol = _tolerances(o, gain, half, None if sigma is None else sigma[k], ref_sys)
        t = float(np.min(tol))
        # a companion line (K-beta, L-beta, L-gamma) is there only with its main line
        own = np.nan_to_num(o.spec.line_evidence(o.channel, 0.3 * o.fwhm)) if o.spec is not None else 0.0
        main_peak = main_sig >= MAIN_SHARE * o.significance
        ok = main_peak | (main_ev >= MAIN_EVIDENCE_SHARE * own)
        shown = elsewhere | (np.isfinite(main_sig) & main_peak)
        lines = (tol[ok], t), half, ref_e[ok], (ref_el[ok], shown[ok])
        if np.any((doublets[:, 0] <= ek) & (ek <= doublets[:, 1])) or _known(
                ek, o.significance, *lines, (obs_e, sig), sums, minor, anode_e):
            continue
        near = (others[:, 0] - t <= ek) & (ek <= others[:, 1] + t)
        at_other = [main_of.get(el, 0.0) for el in others_el[near]]
        if max(at_other, default=0.0) >= OTHER_FAMILY_SHARE * o.significance:
            continue  # another family's line of an element the spectrum shows
        if at_other:
            exotic = max(exotic, o.significance)  # explained, by an uncommon element only
        else:
            bad.append(ek)
            top = max(top, o.significance)
    return _verdict(bad, top, exotic, used)


#: energies (keV) between which a narrow peak is judged by :func:`soft_peaks_check`:
#: below, the zero peak's window (:func:`maxrf.calibration.verdict.zero_checks`); above,
#: the reference lines' range
SOFT_KEV = (0.35, 0.9)
#: systematic uncertainty (keV) of a soft line's energy: xraydb's, and the chemical shifts
#: of L lines
SOFT_LINE_SYS_KEV = 0.003


def soft_peaks_check(
    obs: Sequence[_Obs], gain: float, offset: float, tube_kv: float,
    sigma_eV: np.ndarray | None = None, fitted: Sequence[float] = (),
) -> dict[str, Any]:
    """No main peak of the spectrum at a soft energy (:data:`SOFT_KEV`) but a soft line's.

    Below 0.9 keV a spectrum holds the zero peak, at 0 keV, and soft lines: the K lines of
    N, O, F, and the L and M lines of heavier elements, always far weaker than their
    element's strongest line (Fe L-alpha a few per cent of Fe K-alpha), and absorbed in
    air. A narrow peak there more significant than every fitted peak but one is a soft
    line only at one (within the tolerance of :func:`_tolerances` at the axis'
    uncertainty ``sigma_eV``, eV, at each peak) whose element's strongest line is an
    observed peak at least as significant, or the Si escape of a peak three times as
    significant. Else the axis has moved the zero peak: an axis 3.2 keV off that read Si
    K-alpha as Zr L-alpha put the zero peak, the second strongest peak, at 0.65 keV, and
    passed every other check (dev seed 1010281). Weaker soft peaks are not judged: the
    real vacuum spectra of tests/data/spectra show unexplained ones of up to 74 sigma
    (detector window edges, surface oxides).
    """
    used, _ = _strong_floor(obs, fitted)
    sig = np.array([o.significance for o in obs])
    obs_e = offset + gain * np.array([o.channel for o in obs])
    escapes = np.asarray(physics.escape_energy(obs_e))
    soft_e, parent_e = _soft_lines(tube_kv)
    bad = []
    for k, (o, ek) in enumerate(zip(obs, obs_e)):
        if (len(used) < 2 or o.significance <= used[-2] or not SOFT_KEV[0] < ek < SOFT_KEV[1]
                or o.broad or o.fwhm * gain > _line_fwhm_limit(ek)):
            continue
        half = 0.5 * float(_fwhm_at(ek))
        s_k = None if sigma_eV is None else float(sigma_eV[k])
        tol = _tolerances(o, gain, half, s_k, np.array([SOFT_LINE_SYS_KEV]))[0]
        # a soft line alone (NaN) or beside its element's strongest line's peak
        shown = [np.isnan(p) or np.any((np.abs(obs_e - p) <= 0.5 * float(_fwhm_at(p)))
                                       & (sig >= o.significance))
                 for p in parent_e[np.abs(soft_e - ek) <= tol]]
        escape = np.any((np.abs(escapes - ek) <= half) & (sig >= 3.0 * o.significance))
        if not any(shown) and not escape:
            bad.append((float(ek), o.significance))
    if not bad:
        return check("soft peaks", True, "no narrow peak at 0.35-0.9 keV above all fitted peaks but one", n=0)
    ek, s = max(bad, key=lambda t: t[1])
    message = (f"a narrow peak of {s:.0f} sigma at {ek:.2f} keV, above all fitted peaks but one, is at no "
               "soft line: the zero peak off 0 keV?")
    return check("soft peaks", False, message, n=len(bad), keV=ek)


@functools.lru_cache(maxsize=16)
def _soft_lines(tube_kv: float) -> tuple[np.ndarray, np.ndarray]:
    """Energies (keV) of the lines of Z 7-92 the tube excites within 0.3-1.0 keV, and of
    each one's element's strongest line (NaN where that is the soft line's own family
    and below 1 keV: the K-alpha lines of N, O, F, Ne)."""
    soft, parent = [], []
    for z in range(7, 93):
        lines = physics.element_lines(z, tube_kv, min_keV=0.3, min_rel=1e-4)
        if not lines:
            continue
        top = max(lines, key=lambda ln: ln.rel_intensity)
        for ln in lines:
            alone = top.energy_keV <= 1.0 and top.family == ln.family
            # (a light element's satellite, F K-alpha3 at 0.652 keV, is no line of its own)
            if ln.energy_keV <= 1.0 and (not alone or ln.rel_intensity >= 0.05):
                soft.append(ln.energy_keV)
                parent.append(np.nan if alone else top.energy_keV)
    return np.array(soft), np.array(parent)


def _line_fwhm_limit(keV: float) -> float:
    """The widest a peak at ``keV`` can be and still be a line (keV): 1.6 times the FWHM
    of a poor detector (0.2 keV at 5.9 keV) with the spread of a K-alpha doublet there.

    Broader peaks are scatter or continuum, and no line need explain them. The doublet
    counts: at 25 keV Sn K-alpha1 and 2 lie 0.23 keV apart, and an axis 15 % too steep
    widened Sn K-alpha past the detector's width alone, and it went unjudged (dev
    1010054: Ag L-alpha read as S K-alpha, 1.9 keV off, the 128-sigma Sn K-alpha at no
    line)."""
    energy, split = _kalpha_splits()
    return 1.6 * math.hypot(float(_fwhm_at(keV, 0.2)), float(np.interp(keV, energy, split)))


@functools.lru_cache(maxsize=1)
def _kalpha_splits() -> tuple[np.ndarray, np.ndarray]:
    """Mid-energies (keV) of the K-alpha doublets of :func:`_all_groups`, ascending, and
    the spacing (keV) of each one's K-alpha1 and 2."""
    lo_hi, _families, names = _all_groups()
    ka = lo_hi[names == "Ka"]
    ka = ka[np.argsort(ka.mean(axis=1))]
    return ka.mean(axis=1), ka[:, 1] - ka[:, 0]


def _sum_peaks(obs_e: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Energies (keV) of the sums of two strong observed peaks (energies ``obs_e``,
    significances ``sig``), and the lesser significance of the two: shape (2, n)."""
    # (sums of photon peaks: the zero peak is none, with it every peak would be its own sum)
    keep = (sig >= 0.2 * (sig.max() if sig.size else 0)) & (obs_e > 0.5)
    e, s = obs_e[keep], sig[keep]
    return np.stack([(e[:, None] + e[None, :]).ravel(), np.minimum(s[:, None], s[None, :]).ravel()])


def _strong_floor(obs: Sequence[_Obs], fitted: Sequence[float]) -> tuple[list[float], float]:
    """The significances of the peaks at the ``fitted`` channels (ascending), and the
    significance from which a peak must be explained (:data:`STRONG_SIGMA`, or their
    median where lower, not below :data:`STRONG_FLOOR_SIGMA`)."""
    used = sorted(o.significance for o in obs if any(abs(o.channel - c) <= 0.5 * o.fwhm for c in fitted))
    # a peak as strong as the lines that make the axis is as real as they are: where
    # those are weak, weaker peaks must be explained too
    strong = max(STRONG_FLOOR_SIGMA, min(STRONG_SIGMA, float(np.median(used)))) if used else STRONG_SIGMA
    return used, strong


def _tolerances(o: _Obs, gain: float, half: float, sigma_eV: float | None, ref_sys: np.ndarray) -> np.ndarray:
    """How far (keV) peak ``o`` may lie from each reference line (systematic uncertainty
    ``ref_sys``, keV) and still be it: :data:`UNEXPLAINED_Z` combined uncertainties with
    the axis' ``sigma_eV``, at most ``half`` a FWHM; ``half`` without ``sigma_eV``."""
    if sigma_eV is None:
        return np.full(ref_sys.size, half)
    peak = math.hypot(gain * o.err, 0.02 * o.fwhm * gain)
    return np.minimum(UNEXPLAINED_Z * np.sqrt((sigma_eV * 1e-3) ** 2 + peak**2 + ref_sys**2), half)


def _main_line_support(
    refs: Sequence[_Ref], obs_e: np.ndarray, sig: np.ndarray, lowest: float,
    obs: Sequence[_Obs], gain: float, offset: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per reference line that is an element's companion line, the significance of the
    observed peak at its family's main line (K-alpha, L-alpha; 0 when no peak is there)
    and the data's largest significance above the baseline (a channel, the spectrum of
    ``obs``) within 0.3 FWHM of that main line. Both are infinite for main lines, for the tube's lines (a
    filter may take the tube's main line: 25 um Ni and W L-alpha) and for companions
    whose main line lies below ``lowest`` keV (too soft to be seen, or before the axis'
    start)."""
    mains = {(r.element, r.family): r.keV for r in refs if r.kind == "element" and r.fprimary}
    out, evidence = np.full(len(refs), np.inf), np.full(len(refs), np.inf)
    for i, r in enumerate(refs):
        main = mains.get((r.element, r.family)) if r.kind == "element" and not r.fprimary else None
        if main is None or main < lowest:
            continue
        near = np.abs(obs_e - main) <= 0.5 * float(_fwhm_at(main))
        out[i] = float(sig[near].max()) if near.any() else 0.0
        if obs and obs[0].spec is not None:
            # a main line merged into a neighbour's peak (Sn L-alpha 130 eV above K
            # K-alpha) is no peak of its own, but the counts above the baseline show it
            ev = obs[0].spec.line_evidence((main - offset) / gain, 0.3 * float(_fwhm_at(main)) / gain)
            evidence[i] = ev if np.isfinite(ev) else 0.0
    return out, evidence


def _seen_elsewhere(refs: Sequence[_Ref], at_peak: np.ndarray) -> np.ndarray:
    """Per reference line, whether its element shows elsewhere: its family companion or
    another family's main line, more than a FWHM from it, at an observed peak of at least
    :data:`STRONG_FLOOR_SIGMA` (``at_peak``: per reference line, whether :func:`_peaks_at`
    found one there)."""
    el = np.array([r.element if r.kind == "element" else "" for r in refs])
    fam = np.array([r.family or "" for r in refs])
    primary = np.array([bool(r.fprimary) for r in refs])
    e = np.array([r.keV for r in refs])
    fwhm = np.asarray(_fwhm_at(e), dtype=np.float64)
    other = (
        at_peak[None, :]
        & (el[:, None] == el[None, :])
        & (el[:, None] != "")
        & (np.abs(e[None, :] - e[:, None]) > fwhm[:, None])
        & ((fam[:, None] == fam[None, :]) | primary[None, :])
    )
    return other.any(axis=1)


def _peaks_at(
    refs: Sequence[_Ref], obs: Sequence[_Obs], observed: tuple[np.ndarray, np.ndarray], gain: float,
    sigma_eV: np.ndarray | None, ref_sys: np.ndarray,
) -> np.ndarray:
    """Per reference line, the significance of the strongest observed peak of at least
    :data:`STRONG_FLOOR_SIGMA` at it (``observed``: the peaks' energies, keV, and
    significances), within the tolerance of :func:`_tolerances` at the axis' uncertainty
    ``sigma_eV`` at each peak (eV); 0 where there is none or the line is no element's."""
    obs_e, sig = observed
    out = np.zeros(len(refs))
    for i, r in enumerate(refs):
        if r.kind != "element":
            continue
        half = 0.5 * float(_fwhm_at(r.keV))
        for k in np.flatnonzero((np.abs(obs_e - r.keV) <= half) & (sig >= STRONG_FLOOR_SIGMA)):
            s_k = None if sigma_eV is None else float(sigma_eV[k])
            if abs(obs_e[k] - r.keV) <= _tolerances(obs[k], gain, half, s_k, ref_sys[i : i + 1])[0]:
                out[i] = max(out[i], float(sig[k]))
    return out


def _main_peaks(refs: Sequence[_Ref], at: np.ndarray) -> dict[str, float]:
    """The significance of the peak at each element's strongest reference line (K-alpha,
    or L-alpha where it has no K lines among them), from :func:`_peaks_at`'s ``at``."""
    out: dict[str, float] = {}
    for r, s in zip(refs, at):
        if r.kind == "element" and r.fprimary and s > 0 and r.element is not None:
            out[r.element] = max(out.get(r.element, 0.0), float(s))
    return out


def _doublet_spans(refs: Sequence[_Ref]) -> np.ndarray:
    """(lowest, highest) component energy (keV) of each element's K-alpha reference line:
    shape (n, 2)."""
    # the K-alpha1,2 doublet makes one peak whose maximum lies anywhere between its two
    # lines (Sn, 0.23 keV apart: the peak sits 60 eV above the centroid; beyond them the
    # centroid's own tolerance holds). Not a wider group: a Zn K-alpha read 3.0 keV up
    # fell between Au L-beta's components, 96 eV from their centroid, and that axis
    # passed every check 6.9 keV off (held-out 1070034)
    spans = [(min(c[0] for c in r.components), max(c[0] for c in r.components))
             for r in refs if r.group == "Ka" and r.kind == "element"]
    return np.array(spans, dtype=np.float64).reshape(-1, 2)


def _verdict(bad: list[float], top: float, exotic: float, used: Sequence[float]) -> dict[str, Any]:
    """The ``unexplained peaks`` check from the energies (keV) of the unexplained peaks,
    the strongest one's significance (``top``), the strongest peak an uncommon element
    alone explains (``exotic``) and the significances of the peaks the fit uses
    (``used``, ascending)."""
    above = len(used) >= 2 and top > used[-2]
    # a main peak of the spectrum left to an uncommon element while the fit names weaker
    # peaks: the axis reads the common elements' lines as others (Co K-alpha as Gd L-alpha)
    exotic_above = len(used) >= 2 and exotic > used[-2]
    message = (
        "every strong peak is explained"
        if not bad
        else f"{len(bad)} strong peak(s) unexplained (at {', '.join(f'{e:.2f}' for e in bad[:4])} keV)"
        + (f", the strongest ({top:.0f} sigma) above all fitted peaks but one" if above else "")
    )
    if exotic_above:
        exotic_message = (f"a peak of {exotic:.0f} sigma, above all fitted peaks but one, is at no "
                          "common element's line (an uncommon element's only)")
        message = exotic_message if not bad else f"{message}; {exotic_message}"
    return check(
        "unexplained peaks",
        len(bad) < 2 and not above and not exotic_above,
        message,
        critical=len(bad) >= 3,
        n=len(bad),
    )


def _known(
    ek: float, significance: float, tols: tuple[np.ndarray, float], half: float, ref_e: np.ndarray,
    ref_who: tuple[np.ndarray, np.ndarray],
    observed: tuple[np.ndarray, np.ndarray], sums: np.ndarray, minor: tuple[np.ndarray, np.ndarray],
    anode_e: Sequence[float],
) -> bool:
    """Whether a peak at ``ek`` keV is a common element's line, a blend of two, an escape
    or sum peak, a minor line beside its far stronger main line, or Compton scatter of a
    tube line (``tols``: the tolerance per reference line and the least of them, keV;
    ``ref_who``: the reference lines' elements, '' for none, and whether each one's
    element shows at other lines (:func:`_seen_elsewhere`) or, for a companion line, at
    its main line's peak; ``observed``: energies and significances of all peaks;
    ``sums``: the energies of sums of two strong peaks and the lesser significance of the
    two, shape (2, n))."""
    obs_e, sig = observed
    tol, least = tols
    if np.any(np.abs(ref_e - ek) <= tol):
        return True
    # between two reference lines the detector merges into one peak, anywhere between
    # them: two lines of one element (both there when one is) closer than
    # BLEND_SIGMAS (Zr L-alpha and L-beta, 82 eV apart at 2 keV: a peak 30 eV above
    # L-alpha in the Zr standard of tests/data/spectra), or two elements' lines each of
    # whose elements shows elsewhere (As K-beta and Hg L-beta1, 100 eV apart at 11.8 keV,
    # beside strong As K-alpha and Hg L-alpha peaks, dev seed 400186; Ca K-alpha and Sb
    # L-alpha, 86 eV apart, with Ca K-beta and Sb L-gamma1 peaks, dev seed 400280); other
    # pairs only when far closer (Ti K-alpha and Ba L-alpha, 46 eV), for each may be alone
    ref_el, shown = ref_who
    below, above = np.flatnonzero(ref_e <= ek), np.flatnonzero(ref_e > ek)
    if below.size and above.size:
        i, j = below[np.argmax(ref_e[below])], above[np.argmin(ref_e[above])]
        both = (bool(ref_el[i]) and ref_el[i] == ref_el[j]) or bool(shown[i] and shown[j])
        fwhm = 2 * half
        limit = BLEND_SIGMAS * fwhm / physics.FWHM_PER_SIGMA if both else OTHERS_BLEND_FWHM * fwhm
        if ref_e[j] - ref_e[i] <= limit:
            return True
    # an escape or a sum peak: its parent peaks (a Si K-alpha above; the two summed) are
    # far stronger observed peaks. A sum peak is a few per mille of its parents' counts
    # (pile-up); a peak 0.7 times as significant as the strongest, read as its sum with
    # itself, left a Cr tube's spectrum over Sr 5.2 keV off with every check passed (the
    # tube's line read from Fe K-alpha, Sr K-alpha as their sum; dev seed 500062)
    parent = np.abs(np.asarray(physics.escape_energy(obs_e)) - ek) <= half
    sum_e, sum_sig = sums
    if np.any(parent & (sig >= 3.0 * significance)) or np.any(
            (np.abs(sum_e - ek) <= 2 * half) & (sum_sig >= 3.0 * significance)):
        return True
    # a minor line (L-l, L-eta, K-beta2) of a common element whose main line of that
    # family is a far stronger observed peak
    minor_e, minor_parent = minor
    for main in minor_parent[np.abs(minor_e - ek) <= max(least, 0.25 * half)]:
        # (the main line's peak may be a blend's, pulled up to half a FWHM further off:
        # Sb L-alpha inside Ca K-alpha's peak, 70 eV above it; dev seed 400280)
        p_sig = sig[np.abs(obs_e - main) <= 2 * half]
        if p_sig.size and p_sig.max() >= 3.0 * significance:
            return True
    return any(physics.compton_shift(a, 180.0) - half <= ek <= a for a in anode_e)


@functools.lru_cache(maxsize=16)
def _minor_lines(elements: tuple[str, ...], tube_kv: float) -> tuple[np.ndarray, np.ndarray]:
    """Energies (keV) of the minor lines (0.5-10 % of their family's strongest) of
    ``elements`` the tube excites, and of that strongest line, one per minor line."""
    minor, parent = [], []
    for el in elements:
        lines = physics.element_lines(el, tube_kv, min_keV=0.9, min_rel=0.005)
        for fam in ("K", "L"):
            fam_lines = [ln for ln in lines if ln.family == fam]
            if not fam_lines:
                continue
            main = max(fam_lines, key=lambda ln: ln.rel_intensity)
            for ln in fam_lines:
                if ln.rel_intensity < 0.1 * main.rel_intensity:
                    minor.append(ln.energy_keV)
                    parent.append(main.energy_keV)
    return np.array(minor), np.array(parent)


def _other_groups(tube_kv: float, refs: Sequence[_Ref]) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) component energy (keV) of the main line groups of all elements
    Z 11-92 the tube excites, less the families of the reference lines ``refs`` (``'Fe
    K'``, ``'Pb L'``): shape (n, 2); and each group's element."""
    lo_hi, families, _names = _all_groups()
    exclude = {f"{r.element} {r.family}" for r in refs if r.element is not None}
    keep = (lo_hi[:, 0] <= tube_kv) & ~np.isin(families, list(exclude))
    return lo_hi[keep], np.array([f.split()[0] for f in families[keep]])


#: the main line groups of an element (components the detector merges): K-alpha1,2,
#: K-beta1,3, L-alpha1,2, L-beta1, M-alpha1,2
_MAIN_GROUPS = {"Ka1": "Ka", "Ka2": "Ka", "Kb1": "Kb", "Kb3": "Kb", "La1": "La", "La2": "La",
                "Lb1": "Lb", "Ma": "Ma"}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _all_groups() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lowest, highest) energy (keV) of the components of the main line groups (K-alpha,
    K-beta, L-alpha, L-beta1, M-alpha) of elements Z 11-92, 0.9-100 keV (an unknown
    element shows at least these), their families (``'Fe K'``) and the groups' names
    (``'Ka'``)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for z in range(11, 93):
        for ln in physics.element_lines(z, 100.0, min_keV=0.9, min_rel=0.01):
            if ln.siegbahn in _MAIN_GROUPS:
                key = (f"{ln.element} {ln.family}", _MAIN_GROUPS[ln.siegbahn])
                groups.setdefault(key, []).append(ln.energy_keV)
    lo_hi = np.array([(min(v), max(v)) for v in groups.values()])
    return lo_hi, np.array([k[0] for k in groups]), np.array([k[1] for k in groups])
