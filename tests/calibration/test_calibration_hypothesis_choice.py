"""Choice of the hypothesis: the escape peaks of the tube's lines as references, and the
unexplained-peaks check at the axis' own uncertainty.

Truth: xraydb line energies (Si K-alpha for the escape energy) and the known axis of
synthetic cases (:func:`maxrf.synth_spectra.calibration_case`; development seeds
100000-100299).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xraydb

from maxrf import physics
from maxrf.calibration import auto_calibrate, refine_calibration
from maxrf.calibration.auto import GAIN_RANGE, OFFSET_RANGE, _setup
from maxrf.calibration.choice import POLISH_MAX_MOVE_EV, _another_reading
from maxrf.calibration.explain import compton_pair_ok, compton_side, refute_missing_companions
from maxrf.calibration.hypotheses import _Hyp, _hypotheses, _refine
from maxrf.calibration.match import (
    K_BETA_MAX_RATIO,
    ZERO_FWHM6_RATIO_MAX,
    _assign,
    zero_fwhm6,
    zero_fwhm_limit,
)
from maxrf.calibration.medium import medium_scores
from maxrf.calibration.observe import _Obs, _observe, _prepare
from maxrf.calibration.references import _reference_lines
from maxrf.calibration.results import Calibration
from maxrf.calibration.verdict import assess_calibration, unexplained_check
from maxrf.synth_spectra import calibration_case


def _kev(element: str, name: str) -> float:
    return float(xraydb.xray_lines(element)[name].energy) / 1e3


def _matched_at_truth(case):
    """The spectrum, its peaks, the reference lines and their matches on the true axis."""
    spec = _prepare(case.counts, "sum")
    obs = _observe(spec)
    refs = _reference_lines(case.anode, case.tube_kv)
    return spec, obs, refs, _assign(case.gain_keV, case.offset_keV, obs, refs, 0.4, spec.y.size)


def test_escape_references_sit_one_si_ka_below_the_tube_lines():
    si_ka = (2 * _kev("Si", "Ka1") + _kev("Si", "Ka2")) / 3.0
    for anode in ("Cr", "Cu"):
        refs = _reference_lines(anode, 40.0)
        escapes = [r for r in refs if r.kind == "escape"]
        assert escapes, anode
        for esc in escapes:
            parent = next(r for r in refs if r.name == esc.name.removesuffix(" escape"))
            assert parent.element == anode and parent.kind in ("anode", "scatter")
            assert parent.keV - esc.keV == pytest.approx(si_ka, abs=0.002)
    # Cr K-alpha's escape (3.67 keV for the Rayleigh line) is one
    cr = _reference_lines("Cr", 35.0)
    assert any(r.kind == "escape" and abs(r.keV - (_kev("Cr", "Ka1") - si_ka)) < 0.1 for r in cr)


@pytest.mark.parametrize("seed", [100130, 100204, 100285, 100291])
def test_cr_blank_escape_peak_is_not_taken_for_a_line(seed):
    # Cr-anode blanks with a zero peak: the escape peak of the scattered Cr K-alpha (3.6
    # keV) was matched to Sb L-alpha, whose width then made the true axis look
    # implausible; the axis came out 3.6-7.3 keV off
    case = calibration_case(seed)
    assert case.anode == "Cr" and case.kind == "blank" and case.zero_peak == "on"
    spec, obs, refs, pairs = _matched_at_truth(case)
    e_true = {refs[r].name: case.offset_keV + case.gain_keV * obs[k].channel for k, r in pairs}
    near_escape = [n for n, e in e_true.items() if abs(e - 3.62) < 0.1]
    assert near_escape and all(n.endswith("escape") for n in near_escape)
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 30.0


def _ob(ch: float, sig: float = 500.0) -> _Obs:
    return _Obs(channel=ch, err=0.05, fwhm=15.0, significance=sig, weight=sig**0.5, spec=None, ok=True,
                index=int(ch), broad=False)


def _centroid(element: str, names: tuple[str, ...]) -> float:
    """Intensity-weighted energy (keV) of a line group, from xraydb."""
    lines = xraydb.xray_lines(element)
    w = np.array([lines[n].intensity for n in names])
    return float(np.sum(w * np.array([lines[n].energy for n in names])) / np.sum(w)) / 1e3


def test_unexplained_tolerance_follows_the_axis_uncertainty():
    # peaks 26 eV above Fe and Ti K-alpha (xraydb) read on an axis claiming 7 eV: nothing
    # explains them at 3 sigma; half a FWHM (the old tolerance) found lines "near"
    # (seed 60171's silent failure: Hg L-beta and Ag K-beta passed for Bi L-alpha and Cd
    # K-alpha 24-28 eV off)
    refs = _reference_lines("Rh", 50.0)
    gain = 0.01
    ka = ("Ka1", "Ka2")
    on = [_centroid("Fe", ka), _centroid("Ti", ka), _centroid("Cd", ka), _centroid("Bi", ("La1", "La2"))]
    peaks = [_ob((e + 0.026) / gain) for e in on[:2]]
    tight = unexplained_check(peaks, gain, 0.0, refs, None, 50.0, sigma_eV=7.0)
    assert not tight["passed"] and tight["n"] == 2
    assert unexplained_check(peaks, gain, 0.0, refs, None, 50.0)["passed"]
    # the lines themselves stay explained, and with a loose axis (40 eV) the displaced
    # peaks are within its uncertainty
    lines = [_ob(e / gain) for e in on]
    assert unexplained_check(lines, gain, 0.0, refs, None, 50.0, sigma_eV=7.0)["n"] == 0
    assert unexplained_check(peaks, gain, 0.0, refs, None, 50.0, sigma_eV=40.0)["n"] == 0


def test_a_main_peak_left_to_an_uncommon_element_is_not_explained():
    # dev seed 400151: an axis 13 % short read Co K-alpha (2000 sigma, the spectrum's main
    # line) as Gd L-alpha (xraydb) and fitted the zero peak, an escape peak and Ag K-alpha
    refs = _reference_lines("Rh", 45.0)
    assert "Gd" not in {r.element for r in refs} and "Co" in {r.element for r in refs}
    gain = 0.01
    gd_la, co_ka = _centroid("Gd", ("La1", "La2")), _centroid("Co", ("Ka1", "Ka2"))
    ag_ka, fe_ka = _centroid("Ag", ("Ka1", "Ka2")), _centroid("Fe", ("Ka1", "Ka2"))
    fitted = [_ob(0.0, 10000.0), _ob(fe_ka / gain, 300.0), _ob(ag_ka / gain, 500.0)]
    chans = [o.channel for o in fitted]
    for main, sig, passed in ((gd_la, 2000.0, False), (co_ka, 2000.0, True), (gd_la, 200.0, True)):
        res = unexplained_check([*fitted, _ob(main / gain, sig)], gain, 0.0, refs, None, 45.0,
                                sigma_eV=7.0, fitted=chans)
        assert res["passed"] is passed, res["message"]
        assert ("uncommon element" in res["message"]) is (not passed)


@pytest.mark.parametrize("element", ["Zn", "As"])
def test_a_k_elements_own_l_lines_are_no_uncommon_element(element):
    # dev seeds 1010110 and 1000103: the L lines of Zn and As near 1 keV (xraydb) stand on
    # little continuum and made the spectrum's second peak, stronger than their K-alpha;
    # the right axes were doubtful for "an uncommon element's only". They are the
    # element's own where its K-alpha shows at least 0.3 as strongly, not without it
    refs = _reference_lines("Cu", 50.0)
    families = {f"{r.element} {r.family}" for r in refs if r.kind == "element"}
    assert f"{element} K" in families and f"{element} L" not in families
    gain = 0.01
    la, ka = _centroid(element, ("La1", "La2")), _centroid(element, ("Ka1", "Ka2"))
    fe_ka, ca_ka = _centroid("Fe", ("Ka1", "Ka2")), _centroid("Ca", ("Ka1", "Ka2"))
    base = [_ob(0.0, 12000.0), _ob(fe_ka / gain, 3000.0), _ob(ca_ka / gain, 1500.0)]
    l_peak = _ob(la / gain, 9900.0)
    for ka_sig, passed in ((6500.0, True), (3500.0, True), (2000.0, False), (None, False)):
        peaks = [*base, l_peak] + ([] if ka_sig is None else [_ob(ka / gain, ka_sig)])
        res = unexplained_check(peaks, gain, 0.0, refs, None, 50.0, sigma_eV=5.0,
                                fitted=[o.channel for o in peaks if o is not l_peak])
        assert res["passed"] is passed, (ka_sig, res["message"])


def test_real_spectra_hold_no_counts_below_the_zero_peak():
    # the instruments' own calibrations (independent truth) put nothing below -0.3 keV;
    # the same axes shifted 2 keV down put the scattered continuum there
    from pathlib import Path

    from maxrf.calibration.explain import counts_below_zero
    from maxrf.io.spectra import read_spectrum

    data = Path(__file__).resolve().parents[1] / "data" / "spectra"
    files = sorted(data.glob("*.spx")) + sorted(data.glob("*.msa"))
    assert len(files) >= 20
    shifted = 0
    for path in files:
        s = read_spectrum(path)
        gain, offset = s.header_calibration
        assert not counts_below_zero(s.counts, gain, offset), path.name
        shifted += counts_below_zero(s.counts, gain, offset - 2.0)
    assert shifted >= 0.8 * len(files)


def test_missing_escape_refutes_a_gain_that_moves_the_escape():
    # a Cr blank (seed 100131, Ni filter) read with the gain 0.61x of the truth that once
    # won: its strongest peak (Cr K-alpha) becomes Ca K-alpha, whose escape 1.74 keV below
    # falls where the spectrum is empty; under the true axis the escape of Cr K-alpha is
    # there
    from maxrf.calibration.explain import missing_escapes

    case = calibration_case(100131)
    assert case.anode == "Cr" and case.kind == "blank"
    spec = _prepare(case.counts, "sum")
    obs = _observe(spec)
    refs = _reference_lines(case.anode, case.tube_kv)
    strongest = max(range(len(obs)), key=lambda k: obs[k].significance)
    for (gain, offset), refuted in (((case.gain_keV, case.offset_keV), False), ((0.007852, -0.070), True)):
        pairs = _assign(gain, offset, obs, refs, 0.4, spec.y.size)
        hit = [p for p in pairs if p[0] == strongest]
        assert hit
        assert (hit[0] in missing_escapes(pairs, obs, refs, gain, offset)) is refuted


@pytest.mark.parametrize("seed", [100031, 100227])
def test_sample_lines_hiding_the_anode_line_do_not_lose_to_a_worse_explanation(seed):
    # W-anode line-rich scans with a zero peak: W L-alpha hidden by the sample's lines;
    # the right axis (explaining nearly every peak) lost to one that found a "W L-alpha"
    # and left strong peaks unexplained, 0.3-6.6 keV off
    case = calibration_case(seed, matrix=None)  # the draws they were found on
    assert case.anode == "W" and case.kind == "lines"
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 30.0


def test_tube_lines_with_compton_partners_at_one_angle_verify_two_peaks():
    # a Rh blank behind 100 um Al with no zero peak (seed 100053): four peaks, Rh K-alpha
    # and K-beta (xraydb) with their Compton peaks; the two-peak axis was never a
    # candidate and a three-line chance fit 11.6 keV off won
    case = calibration_case(100053)
    assert case.anode == "Rh" and case.kind == "blank" and case.zero_peak == "off"
    spec, obs, refs, pairs = _matched_at_truth(case)
    g, o = case.gain_keV, case.offset_keV
    names = {refs[r].name for _, r in pairs}
    assert {"Rh Ka", "Rh Kb"} <= names
    assert compton_pair_ok(pairs, obs, refs, g, o)
    # the same pairs read with a gain 10 % off (same Rh K-alpha): the K-alpha's Compton
    # peak then gives an angle whose K-beta Compton energy misses the observed one (the
    # broad Compton peaks test the gain coarsely: the Rayleigh lines' match does the rest)
    ka = next(k for k, r in pairs if refs[r].name == "Rh Ka")
    for f in (0.9, 1.1):
        g2 = f * g
        assert not compton_pair_ok(pairs, obs, refs, g2, o + (g - g2) * obs[ka].channel)
    # the two-peak reading wins; two lines 2.5 keV apart pin the axis loosely (the
    # coverage check says so): right lines, an honest verdict
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    err = case.max_error_eV(cal.gain_keV, cal.offset_keV)
    assert {"Rh Ka", "Rh Kb"} <= {p.name for p in cal.peaks}
    cover = next(c for c in cal.checks if c["name"] == "coverage")
    assert err <= 3.0 * cover["sigma_eV"] and err <= 150.0
    assert err <= 30.0 or cal.quality != "good"


def test_a_failed_check_does_not_hand_over_to_a_worse_explanation():
    # W anode behind 50 um Cu (seed 100177): Cu's K edge absorbs W L-beta, so the scatter
    # check fails the right axis; the next solution (passing, 5.4 keV off) left more of
    # the spectrum unexplained
    case = calibration_case(100177)
    assert case.anode == "W" and case.filter[0] == "Cu"
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 30.0


def test_the_strongest_line_left_unexplained_refutes_an_axis():
    # a Cr blank with a huge zero peak (seed 100018): an axis 1.47x the true gain put the
    # zero at 0 keV and the escape peak at Cr K-alpha, leaving the real Cr K-alpha (the
    # strongest line, 3900 sigma) unexplained; the zero's weight made it win, 9.5 keV off
    # at 20 keV, called good
    case = calibration_case(100018)
    assert case.anode == "Cr" and case.zero_peak == "on"
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    err = case.max_error_eV(cal.gain_keV, cal.offset_keV)
    assert err <= 60.0
    assert err <= 30.0 or cal.quality != "good"


@pytest.mark.parametrize("seed", [100006, 100094])
def test_a_solution_the_checks_pass_wins_over_a_better_scored_doubtful_one(seed):
    """Dev seeds (two Ag blanks, the zero peak on the axis and cut) where a solution
    ranked before the true one is doubtful (100006: 146 eV off) and the true one passes
    every check: of the judged solutions the good one is taken.

    The true solution is told from the other by its error, not held to 10 eV: 100006 has
    61 000 counts, its Ag K-alpha centre scatters by 7 eV rms over Poisson draws of the
    same spectrum at the true axis (Ag K-beta by 12), and its axis lies 7-10 eV off
    over 2-20 keV as the K-beta fit changes within that."""
    case = calibration_case(seed)
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 30.0
    assert cal.quality == "good"


@pytest.mark.parametrize("seed", [400092, 500035])
def test_between_doubtful_solutions_the_one_fewer_checks_fail_wins(seed):
    """Dev seeds (Cu tube, line-rich, zero peak on the axis) where the best-scored
    solution (12.6 and 8.8 keV off) fails more checks than the true one, both doubtful, and
    the better-scored one was kept. On 400092 it reads Ti K-beta as the Cu K-alpha blend
    and fails four checks (continuum end, redundancy, independent lines, coverage); the
    true one only the coverage."""
    case = calibration_case(seed)
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


def test_a_solution_explaining_less_is_not_taken_for_passing_every_check():
    """Held-out seed 840226 (looked at after its measurement): an Ag tube whose K lines lie
    beyond the axis' end, Ag L, Ca, Cr, Co and Ni lines. Reading every line one element
    down (Ag L-alpha as Cl K-alpha, Ni as Co...) leaves peaks unexplained and still passes
    every check, 1.1 keV off; the true reading explains everything and is doubtful (a
    rival reading of the anode's lines). The one explaining less was taken as good."""
    case = calibration_case(840226)
    assert case.anode == "Ag" and case.zero_peak == "off"
    assert case.offset_keV + case.gain_keV * case.counts.size < 22.0  # Ag K-alpha off the axis
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    err = case.max_error_eV(cal.gain_keV, cal.offset_keV)
    assert err <= 30.0 or cal.quality != "good"
    assert err <= 15.0


def test_a_line_wider_than_its_neighbours_does_not_refute_the_true_axis():
    from maxrf.calibration import auto
    from maxrf.calibration.hypotheses import _Hyp
    from maxrf.calibration.match import _FANO_SLOPE, _fano_law

    # dev seed 400141: a Mo blank with Ar and Fe; Ar K-alpha is fitted 30 % wider than the
    # detector makes it. A straight line through the squared widths of Ar K-alpha, Fe
    # K-alpha and K-beta (unweighted) falls with energy, and the true axis lost its score
    # to Fe K-beta read as Co K-alpha (200 eV off). Weighed by their uncertainties, three
    # lines within 4 keV do not refute it
    case = calibration_case(400141, matrix=None)  # the draw it was found on
    assert case.anode == "Mo" and set(case.elements) == {"Ar", "Fe"}
    refs, anode_ref, spec, obs = auto._setup(case.counts, None, case.anode, case.tube_kv)
    hyp = auto._refine(_Hyp(case.gain_keV, case.offset_keV), obs, refs, spec, anode_ref,
                       max(o.weight for o in obs), case.anode, case.tube_kv)
    pts = [(refs[r].keV, (obs[k].fwhm * case.gain_keV) ** 2) for k, r in hyp.pairs
           if refs[r].kind == "element" and obs[k].significance >= 30]
    assert sorted(round(e, 2) for e, _ in pts) == [2.96, 6.4, 7.06]  # Ar Ka, Fe Ka, Fe Kb
    slope = np.polyfit(*zip(*pts), 1)[0]
    assert slope / _FANO_SLOPE < 0.4  # what the unweighted law made of them
    law = _fano_law(hyp.pairs, obs, refs, case.gain_keV)
    assert law is not None and not law.outside(0.4, 2.5, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert cal.quality == "good"


def test_peaks_narrower_than_any_line_are_not_left_unexplained():
    from maxrf import physics
    from maxrf.calibration import auto
    from maxrf.calibration.explain import unexplained_peaks

    # dev seed 400071: a Rh blank whose 45 kV continuum holds 8-9 sigma bumps 74 and 108
    # eV wide at 15-17 keV, where the detector makes lines 200 eV wide. Counted as peaks
    # the true axis leaves unexplained, they made an axis reading them as Zr K win, 975 eV
    # off (failed)
    case = calibration_case(400071, matrix=None)  # the draw it was found on
    assert case.kind == "blank" and case.zero_peak == "on"
    refs, anode_ref, spec, obs = auto._setup(case.counts, None, case.anode, case.tube_kv)
    hyp = auto._refine(_Hyp(case.gain_keV, case.offset_keV), obs, refs, spec, anode_ref,
                       max(o.weight for o in obs), case.anode, case.tube_kv)
    energy = [case.offset_keV + case.gain_keV * o.channel for o in obs]
    # the detector's true width at each peak's energy: the independent reference
    true_w = [float(physics.fwhm_keV(max(e, 0.0), case.fwhm_at_6keV)) for e in energy]
    matched = {k for k, _ in hyp.pairs}
    noise = [k for k, o in enumerate(obs) if k not in matched and energy[k] > 0.9 and o.ok
             and o.fwhm * case.gain_keV < 0.6 * true_w[k]]
    assert len(noise) == 2 and all(14.0 < energy[k] < 18.0 for k in noise)
    left = unexplained_peaks(hyp.pairs, obs, refs, hyp.gain, hyp.offset, case.anode, case.tube_kv)
    left = [k for k, _ in left]
    assert not set(noise) & set(left)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


@pytest.mark.parametrize("seed", [400215, 500365])
def test_a_refuted_best_hands_over_to_a_solution_passing_every_check(seed):
    """Dev seeds (Cu tubes, line-rich) whose best-scored solution explains every peak by
    reading lines as uncommon elements (Mn, Cd, Sb; 2.8 and 1.7 keV off) and fails a
    critical check, while the true one leaves weak peaks unexplained and passes every
    check: the rule that a solution explaining less never replaces the best kept the
    refuted one."""
    case = calibration_case(seed)
    assert case.anode == "Cu" and case.kind == "lines"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert cal.quality == "good"


def test_a_rival_reading_failing_more_checks_does_not_take_over():
    """Dev seed 500237 (Mo blank behind 25 um Ti, no zero peak): the low peak is Ar
    K-alpha (air), or K K-alpha 360 eV higher, a rival identity the peak alone cannot
    refute. The K reading puts Mo K-beta 55 eV off its spacing from K-alpha and fails
    more checks; that it explains one more weak peak does not make it the axis (385 eV
    off at 2 keV): the Ar reading stays, within 10 eV of the true axis."""
    case = calibration_case(500237)
    assert set(case.elements) == {"Ar"} and case.zero_peak == "off"
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert any(p.name == "Ar Ka" and p.used for p in cal.peaks)


def test_a_line_group_may_be_as_wide_as_its_components_spread():
    """Held-out seed 880119 (looked at after its measurement; Mo tube, Sn, no zero peak):
    Sn K-alpha1 and K-alpha2 lie 0.23 keV apart (xraydb), and their peak, the strongest
    of the spectrum, is 0.48 keV wide at 25 keV: wider than one line of a poor detector,
    so no line could be it. The axis read Sn L-alpha as K K-alpha, 142 eV off, and was
    called good. The group's own spread widens what its peak may be."""
    from maxrf.calibration.match import _width_ok
    from maxrf.calibration.references import _cluster_fwhm

    lines = xraydb.xray_lines("Sn")
    split = (lines["Ka1"].energy - lines["Ka2"].energy) / 1e3
    assert 0.2 < split < 0.25
    sn_ka = next(r for r in _reference_lines("Mo", 50.0) if r.name == "Sn Ka")
    assert _cluster_fwhm(sn_ka) > 0.1
    peak, line, sig = np.array([0.48]), np.array([sn_ka.keV]), np.array([2000.0])
    assert not _width_ok(peak, line, sig)
    assert _width_ok(peak, line, sig, spread_keV=_cluster_fwhm(sn_ka))
    case = calibration_case(880119)
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    err = case.max_error_eV(cal.gain_keV, cal.offset_keV)
    assert err <= 10.0 and (err <= 30.0 or cal.quality != "good")


def test_one_elements_lines_beside_the_zero_peak_set_no_width_law():
    from maxrf.calibration import auto
    from maxrf.calibration.match import _FANO_SLOPE, _fano_law

    # dev seed 400136: a Cr blank through 25 um Ni with the instrument's Cu K lines. Cu
    # K-alpha sits on the filter's transmission hump below the Ni K edge and is fitted
    # far wider than the detector makes it; the zero peak fixes the law's intercept, so
    # that one width made the slope 3.2 x Fano's and cost the true axis 80 % of its
    # score. Cu K-alpha read as Cr K-alpha (6.6 keV off) was chosen.
    case = calibration_case(400136)
    assert case.anode == "Cr" and case.filter == ("Ni", 25.0) and case.zero_peak == "on"
    refs, anode_ref, spec, obs = auto._setup(case.counts, None, case.anode, case.tube_kv)
    hyp = auto._refine(_Hyp(case.gain_keV, case.offset_keV), obs, refs, spec, anode_ref,
                       max(o.weight for o in obs), case.anode, case.tube_kv)
    names = {refs[r].name for _, r in hyp.pairs}
    assert {"zero", "Cu Ka", "Cu Kb"} <= names
    # the Cu K-alpha width alone, beside the zero peak's, is far off the detector's law
    k_cu = next(k for k, r in hyp.pairs if refs[r].name == "Cu Ka")
    k_zero = next(k for k, r in hyp.pairs if refs[r].kind == "zero")
    w_cu, w_zero = obs[k_cu].fwhm * case.gain_keV, obs[k_zero].fwhm * case.gain_keV
    assert (w_cu**2 - w_zero**2) / 8.04 / _FANO_SLOPE > 2.5
    assert _fano_law(hyp.pairs, obs, refs, case.gain_keV) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 30.0
    # the Rayleigh line of Cr K-alpha, fitted at the zero peak's resolution as the precise
    # fit does, does not refute the right axis (at the Cu line's 0.25 keV it landed 73 eV off)
    scatter = next(c for c in cal.checks if c["name"] == "anode scatter")
    assert not scatter["critical"]
    assert cal.quality != "failed"


@pytest.mark.parametrize("seed", [400018, 400136])
def test_the_anode_scatter_check_refutes_only_at_either_resolution(seed):
    from maxrf.calibration import refine_calibration
    from maxrf.calibration.observe import _prepare
    from maxrf.calibration.precise import ZERO_RESOLUTION_SD
    from maxrf.calibration.scatter_check import scatter_check

    # at the true axis, the Rayleigh lines of a soft tube's scatter blends fitted at one of
    # the two resolutions land far off: W L-alpha (400018) at the zero peak's, Cr K-alpha
    # (400136) at the one Cu K-alpha's blended width implies. Neither refutes the axis.
    case = calibration_case(seed, matrix=None)  # the draws they were found on
    kw = {"anode": case.anode, "tube_kv": case.tube_kv}
    cal = refine_calibration(case.counts, case.gain_keV, case.offset_keV, **kw)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 20.0
    scatter = next(c for c in cal.checks if c["name"] == "anode scatter")
    assert not scatter["critical"] and cal.quality != "failed"
    # one of the two fits alone would have refuted it
    spec = _prepare(case.counts, "sum")
    refs = _reference_lines(case.anode, case.tube_kv)
    g, o = case.gain_keV, case.offset_keV
    f6_lines = 0.145 if seed == 400018 else 0.25
    zero_f6 = case.fwhm_at_6keV
    at_lines = scatter_check(spec, g, o, refs, f6_lines, [])
    at_zero = scatter_check(spec, g, o, refs, zero_f6, [], width_sd=ZERO_RESOLUTION_SD)
    assert at_lines is not None and at_zero is not None
    if seed == 400018:
        assert at_lines["critical"] != at_zero["critical"]
    else:
        # at the blended width's resolution the Cr K-alpha fit does not describe its
        # window (chi-square/dof 6.4, above scatter_fit.MISFIT_CHI2) and so measures
        # nothing: the check at that resolution no longer refutes on its own
        assert not at_zero["critical"]
        assert not at_lines["critical"] and "cannot be measured" in at_lines["message"]


@pytest.mark.parametrize("seed", [400218, 500392])
def test_solutions_without_the_anode_line_get_their_turn_when_all_with_it_fail(seed):
    # Cr tubes through 50 um Cu, which leaves almost none of the tube's K lines: every
    # solution that put a peak at Cr K-alpha failed (4.5 and 9.9 keV off), and the true
    # axes, finding no Cr K, were never judged
    case = calibration_case(seed, matrix=None)  # the draws they were found on
    assert case.anode == "Cr" and case.filter == ("Cu", 50.0)
    mu = xraydb.material_mu("Cu", _kev("Cr", "Ka1") * 1e3, density=8.96)  # 1/cm
    assert np.exp(-mu * 50e-4) < 2e-3  # a thousandth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert cal.quality != "failed"


@pytest.mark.parametrize("seed", [500069, 500351])
def test_a_k_anodes_l_beta_needs_its_l_alpha(seed):
    """Dev seeds: Mo blanks without a filter or a zero peak, where Mo K-alpha and K-beta
    alone leave 2 keV 20 eV uncertain. The one Mo L peak (L-alpha, 2.29 keV) was read as
    L-beta (2.39 keV) with no L-alpha matched, which put 2 keV 105 eV off; a weaker line
    of the tube's other family is matched only beside its main line, as an element's."""
    case = calibration_case(seed)
    assert case.anode == "Mo" and case.kind == "blank" and case.zero_peak == "off"
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    names = {p.name for p in cal.peaks}
    assert "Mo Lb" not in names or "Mo La" in names
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


def test_a_companion_under_the_tubes_compton_side_gives_no_verdict():
    # a Cu tube's spectrum with Co behind a Ni filter (held-out seed 990093, looked at
    # after its run): Co K-beta sits under the Cu K-alpha blend's Compton side, so its
    # shoulder cannot show; Co K-alpha was refuted on the true axis and the narrow Co
    # K-alpha read as the Cu blend won, 3.2 keV off
    co_kb, cu_ka = _kev("Co", "Kb1"), _kev("Cu", "Ka1")
    lo, hi = compton_side(cu_ka)
    assert lo < co_kb < hi and hi - lo > cu_ka - float(physics.compton_shift(cu_ka, 180.0))
    case = calibration_case(990093)
    assert case.anode == "Cu" and "Co" in case.elements and case.zero_peak == "on"
    spec, obs, refs, pairs = _matched_at_truth(case)
    assert "Co Ka" in [refs[r].name for _, r in pairs]
    refuted = refute_missing_companions(pairs, obs, refs, case.gain_keV, case.offset_keV, spec.y.size)
    assert "Co Ka" not in [refs[r].name for _, r in refuted]
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


def test_a_peak_stronger_than_the_tube_k_alpha_is_no_k_beta_blend():
    # a Cu tube's spectrum rich in Zn (held-out 990184, looked at after its run): Zn
    # K-alpha (8.63 keV) lies inside the Cu K-beta blend's span and is 1.5 times as
    # significant as the Cu K-alpha blend; read as the tube's K-beta it left Zn K-beta
    # and L-alpha unexplained and the axis came out 2.8 keV off
    case = calibration_case(990184)
    assert case.anode == "Cu" and "Zn" in case.elements
    spec, obs, refs, pairs = _matched_at_truth(case)
    at = {refs[r].name: case.offset_keV + case.gain_keV * obs[k].channel for k, r in pairs}
    assert at["Zn Ka"] == pytest.approx(_centroid("Zn", ("Ka1", "Ka2")), abs=0.01)
    assert at["Zn Kb"] == pytest.approx(_centroid("Zn", ("Kb1", "Kb3")), abs=0.02)
    assert abs(at["Cu Kb scatter"] - _kev("Cu", "Kb1")) < abs(at["Cu Kb scatter"] - at["Zn Ka"])
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


def test_zero_peak_limit_is_the_noise_of_the_broadest_detector():
    # the widest zero peak allowed is the noise FWHM (physics.fwhm_keV at 0 keV) of a
    # detector ZERO_FWHM6_RATIO_MAX times the given resolution
    for f6 in (None, 0.125, 0.15, 0.2):
        top = ZERO_FWHM6_RATIO_MAX * (0.26 if f6 is None else f6)
        assert zero_fwhm_limit(f6) == pytest.approx(float(physics.fwhm_keV(0.0, top)), rel=1e-9)


@pytest.mark.parametrize("seed, first_rank", [(990184, 40), (500234, None)])
def test_the_first_scoring_credits_only_the_first_peak_as_a_zero(seed, first_rank):
    # the first scoring credits a strong peak as narrow as the noise as a verified zero,
    # as the final score does: the true axis of 990184 (a zero peak of 57,000 sigma that
    # lines 8-10 keV away cannot verify by leave-one-out) ranked 262nd of 2895 without
    # it and never reached the final scoring. Only the axis' first peak can be the zero:
    # on an Rh blank without one (dev 500234) crediting a line read as the zero, with
    # peaks below it, crowded the true axis out (6 -> 22 eV)
    case = calibration_case(seed)
    refs, anode_ref, spec, obs = _setup(case.counts, None, case.anode, case.tube_kv)
    gains, offsets = _hypotheses(obs, refs, spec.y.size, GAIN_RANGE, OFFSET_RANGE)
    limits = (GAIN_RANGE[0] * 0.8, GAIN_RANGE[1] * 1.2)
    weight = max(b.weight for b in obs)
    score, g, o, _ = medium_scores(gains, offsets, obs, refs, spec, anode_ref, weight, limits)
    err = np.array([case.max_error_eV(a, b) for a, b in zip(g, o)])
    order = np.argsort(-np.where(np.isfinite(score), score, -np.inf))
    if first_rank is not None:
        assert int(np.flatnonzero(err[order] <= 30.0)[0]) < first_rank
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


@pytest.mark.parametrize("seed", [970094, 990121])
def test_a_doubtful_reading_of_a_filtered_anode_line_gives_way_to_a_good_axis_without_it(seed):
    # Cr tubes behind 100 um Al or 50 um Cu (held-out seeds looked at after their runs):
    # the filter leaves under 2 % of Cr K-alpha (xraydb), a sample's line read as it made
    # a doubtful solution 6.8-9.2 keV off, and the true axis was left out for not finding
    # Cr K-alpha; it now gets its turn and is taken when its verdict is better. What the
    # filter leaves of the tube's K-alpha blend may be too little to measure its Rayleigh
    # line: that doubt is the turn's premise, not evidence against it (990121, whose Ba
    # L-beta lines are fitted beside the blend as their components)
    case = calibration_case(seed)
    assert case.anode == "Cr" and case.kind == "lines" and case.filter is not None
    element, um = case.filter
    mu = xraydb.material_mu(element, 1e3 * _kev("Cr", "Ka1"))  # 1/cm
    assert math.exp(-mu * um * 1e-4) < 0.02
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    failed = [c for c in cal.checks if not c["passed"]]
    filtered_only = [c["name"] for c in failed] == ["anode scatter"] and failed[0]["unmeasured"] == ["Cr Ka"]
    assert cal.quality == "good" or (cal.quality == "doubtful" and filtered_only), failed
    assert not any(p.name.startswith("Cr Ka") and p.used for p in cal.peaks)


def test_a_solution_leaving_a_peak_at_the_anode_line_does_not_say_a_filter_took_it():
    # a Cr blank behind 25 um Ni (dev 400271), its Cr K-alpha blend the strongest peak:
    # read as Ti K lines, with its Fe K-alpha left unmatched at that axis' Cr K-alpha
    # place, it passed every check 3.1 keV off; such a solution gets no turn
    case = calibration_case(400271)
    assert case.anode == "Cr" and case.kind == "blank" and case.filter == ("Ni", 25.0)
    spec = _prepare(case.counts, "sum")
    obs = _observe(spec)
    strongest = max((o for o in obs if o.channel > 0.5 / case.gain_keV), key=lambda o: o.significance)
    at = case.offset_keV + case.gain_keV * strongest.channel
    assert _kev("Cr", "Kb1") > at > float(physics.compton_shift(_kev("Cr", "Ka1"), 180.0))
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


def test_a_k_beta_beyond_the_axis_end_tests_the_gain_by_its_compton_peak():
    # an Ag blank behind 25 um Ti with a zero peak (held-out 990079, looked at after its
    # run): the axis ends at 24 keV, between Ag K-beta's Compton peak and its Rayleigh
    # line (xraydb), so only the zero peak and Ag K-alpha are lines; unverified by a
    # two-point fit, they lost to Zr K lines read on the Compton and Rayleigh peaks, 5 keV off
    case = calibration_case(990079)
    assert case.anode == "Ag" and case.kind == "blank" and case.zero_peak == "on"
    spec, obs, refs, pairs = _matched_at_truth(case)
    g, o, n = case.gain_keV, case.offset_keV, spec.y.size
    end = o + g * (n - 1)
    kb = _kev("Ag", "Kb1")
    kb_compton = float(physics.compton_shift(kb, case.theta_deg))
    assert kb_compton < end < kb
    e = o + g * np.array([b.channel for b in obs])
    assert np.min(np.abs(e - kb_compton)) < 0.1  # its Compton peak is observed
    assert {refs[r].name for _, r in pairs} == {"zero", "Ag Ka"}
    assert compton_pair_ok(pairs, obs, refs, g, o, n)
    assert not compton_pair_ok(pairs, obs, refs, g, o)  # without the axis' end: no K-beta
    ka = next(k for k, r in pairs if refs[r].name == "Ag Ka")
    for f in (0.9, 1.1):  # the same peaks on a gain 10 % off
        g2 = f * g
        assert not compton_pair_ok(pairs, obs, refs, g2, o + (g - g2) * obs[ka].channel, n)
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


def test_a_line_where_a_stronger_peaks_escape_falls_does_not_anchor_the_axis():
    # a Rh tube's spectrum with Cr, Mn and S (held-out 980049, looked at after its run):
    # Cr K-alpha's Si escape (xraydb: Cr K-alpha less Si K-alpha) was read as Ca
    # K-alpha, 15 eV off that line, and fitted; leaving it out from the others put Rh
    # K-alpha 204 eV off, which failed the right axis, and a wrong one 1.2 keV off won
    case = calibration_case(980049)
    assert case.anode == "Rh" and "Cr" in case.elements and "Ca" not in case.elements
    escape = _centroid("Cr", ("Ka1", "Ka2")) - _kev("Si", "Ka1")
    ref = refine_calibration(case.counts, case.gain_keV, case.offset_keV, anode=case.anode,
                             tube_kv=case.tube_kv)
    ca = next(p for p in ref.peaks if p.name == "Ca Ka")
    assert case.offset_keV + case.gain_keV * ca.channel == pytest.approx(escape, abs=0.01)
    assert not ca.used and ref.quality != "failed"
    assert case.max_error_eV(ref.gain_keV, ref.offset_keV) <= 10.0
    cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0


@pytest.mark.parametrize("seed, left_out", [(1030182, {"zero", "Rh La"}), (1010174, {"Rh La"})])
def test_the_chosen_axis_is_matched_again_on_its_precise_axis(seed, left_out):
    # Rh blanks, zero peak cut (1030182) or off the axis (1010174), looked at after their
    # held-out runs: the chosen hypothesis matched only Rh K-alpha and K-beta on its rough
    # axis; the precise refit of those two put 2 keV 10 and 26 eV off, where the lines
    # matched on that refit's axis (the zero peak, Rh L-alpha) pin it within 5 eV.
    # Truth: the case's axis
    case = calibration_case(seed)
    assert case.anode == "Rh" and case.kind == "blank"
    kw = {"anode": case.anode, "tube_kv": case.tube_kv}
    cal = auto_calibrate(case.counts, **kw)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert left_out <= {p.name for p in cal.peaks if p.used}
    assert 5.0 < cal.diagnostics["polish_move_eV"] <= POLISH_MAX_MOVE_EV


def test_a_polish_that_worsens_the_verdict_keeps_the_choice():
    # dev 400081, a W tube over Cu, Sr and Zr: matched again on the chosen axis (2 eV
    # off, good), the peaks lose Cu, Sr and Zr to W M and S lines and the refit is
    # doubtful; the first choice is kept. Truth: the case's axis
    case = calibration_case(400081)
    kw = {"anode": case.anode, "tube_kv": case.tube_kv}
    cal = auto_calibrate(case.counts, **kw)
    again = refine_calibration(case.counts, cal.gain_keV, cal.offset_keV, **kw)
    assert cal.quality == "good" and again.quality == "doubtful"
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert "polish_move_eV" not in cal.diagnostics


@pytest.mark.parametrize("shift_eV", [20.0, 60.0])
def test_a_polish_that_moves_far_keeps_the_choice(shift_eV):
    # dev 400002, a Cr tube's line-rich spectrum whose chosen axis (0.3 eV off, good) its
    # peaks pin: moved by shift_eV and matched again there, the peaks pull it back
    # (refine_calibration, as good as before). A move within POLISH_MAX_MOVE_EV is taken, a
    # larger one is not. (Dev 400195 has no such fixed point on every install's
    # arithmetic: on some, its re-match leaves the chosen axis by 145 eV)
    from dataclasses import replace

    from maxrf.calibration.auto import _check_inputs
    from maxrf.calibration.choice import _polished
    from maxrf.calibration.quality import axis_difference_eV

    case = calibration_case(400002)
    kw = {"anode": case.anode, "tube_kv": case.tube_kv}
    cal = auto_calibrate(case.counts, **kw)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    moved = replace(cal, offset_keV=cal.offset_keV + shift_eV / 1e3, diagnostics={})
    again = refine_calibration(case.counts, moved.gain_keV, moved.offset_keV, **kw)
    move = axis_difference_eV((moved.gain_keV, moved.offset_keV), (again.gain_keV, again.offset_keV),
                              case.counts.size)
    assert again.quality == moved.quality
    assert move == pytest.approx(shift_eV, abs=5.0)  # back where the search put it
    y, _, anode, kv, gain_range = _check_inputs(case.counts, None, case.anode, case.tube_kv, GAIN_RANGE)
    refs, anode_ref, spec, obs = _setup(y, None, anode, kv)
    out = _polished(moved, obs, refs, spec, anode_ref, anode, kv, None, gain_range)
    if move <= POLISH_MAX_MOVE_EV:
        assert out is not moved and out.diagnostics["polish_move_eV"] == pytest.approx(move)
        assert case.max_error_eV(out.gain_keV, out.offset_keV) == pytest.approx(
            case.max_error_eV(again.gain_keV, again.offset_keV))
    else:
        assert out is moved and "polish_move_eV" not in out.diagnostics


def test_k_beta_ceiling_lies_above_every_elements_k_beta_over_k_alpha():
    # xraydb's K-beta/K-alpha intensities, S to Sn: 0.03-0.25, half the ceiling at most
    for z in range(16, 51):
        lines = xraydb.xray_lines(z, "K")
        ka = sum(v.intensity for n, v in lines.items() if n.startswith("Ka"))
        kb = sum(v.intensity for n, v in lines.items() if n.startswith("Kb"))
        assert kb / ka < 0.5 * K_BETA_MAX_RATIO + 0.01, z


def test_a_peak_as_high_as_the_k_alpha_is_no_k_beta_of_that_element():
    # dev 400081, a W tube over Sr, Zr, Cu and S: Zr K-alpha (15.78 keV, xraydb) lies 60
    # eV below Sr K-beta (15.84) and was read as it beside Sr K-alpha as high; that
    # reading, 75 eV off, moved the axis until both elements were lost, and the refit from
    # the true axis landed 9 eV off. Truth: the case's axis and its elements
    case = calibration_case(400081)
    assert {"Sr", "Zr"} <= set(case.elements)
    assert 0.03 < _kev("Sr", "Kb1") - _kev("Zr", "Ka1") < 0.1
    refs, _anode_ref, _spec, obs = _setup(case.counts, None, case.anode, case.tube_kv)
    pairs = _assign(case.gain_keV, case.offset_keV, obs, refs, 0.5, case.counts.size)
    names = {refs[r].name for _, r in pairs}
    assert {"Sr Ka", "Zr Ka", "Zr Kb"} <= names and "Sr Kb" not in names
    r = refine_calibration(case.counts, case.gain_keV, case.offset_keV, anode=case.anode,
                           tube_kv=case.tube_kv)
    assert case.max_error_eV(r.gain_keV, r.offset_keV) <= 5.0


def test_a_blank_read_with_its_compton_maxima_as_rayleigh_lines_is_not_called_good():
    # held-out 1170048 (looked at after its run): a W blank behind 50 um of Cu (L-beta and
    # L-gamma gone, xraydb: the Cu K edge at 8.98 keV), a zero peak, 2048 channels ending at
    # 30 keV. Read 3 % compressed, the L-ell and L-alpha blends' maxima (their Compton
    # peaks at a high angle) are the Rayleigh lines and the real L-alpha Rayleigh line is
    # Zn K-alpha, left out of the fit: 580 eV off at 20 keV, and every other check passes
    # it. Zn K-beta, due as a clear peak on the empty continuum behind the filter, is not
    # there. Truth: the case's axis
    case = calibration_case(1170048)
    wrong = assess_calibration(case.counts, 0.015509091498336954, -0.8713530991791438, anode="W",
                               tube_kv=case.tube_kv)
    assert case.max_error_eV(0.015509091498336954, -0.8713530991791438) > 500.0
    assert wrong[0] != "good"
    companions = next(c for c in wrong[1] if c["name"] == "companion lines")
    assert not companions["passed"] and "Zn Kb" in companions["message"]
    assert case.anode == "W" and case.filter == ("Cu", 50.0) and case.counts.size == 2048
    assert xraydb.xray_edge("Cu", "K").energy / 1e3 < xraydb.xray_lines("W")["Lb1"].energy / 1e3
    cal, err = _auto(case)
    assert err <= 30.0 or cal.quality != "good", (err, cal.quality)


def test_gold_read_as_mercury_with_the_tubes_compton_maximum_as_its_line_is_not_called_good():
    # held-out 1180060 (looked at after its run): a Cu tube over Au, no filter, the zero
    # peak off the axis. Read 5 % stretched, Au L-alpha, L-beta and L-gamma are Hg's
    # (xraydb: each Hg line 2.9-3.4 % above Au's, within 7 eV with the offset), the Cu
    # K-alpha blend's Compton maximum is its Rayleigh line (-12 eV) and the real Rayleigh
    # line's upper flank is taken by a step at Ni's K edge (8.33 keV) though no filter is
    # there; Cu K-beta's fit runs its width factor to the bound. 787 eV off at 20 keV,
    # every check passed it. The counts show no drop at Ni's edge, so no step is fitted
    # there (scatter_fit._continuum_drops). Truth: the case's axis
    case = calibration_case(1180060)
    assert case.anode == "Cu" and case.filter is None and "Au" in case.elements
    au, hg = xraydb.xray_lines("Au"), xraydb.xray_lines("Hg")
    assert all(1.025 < hg[s].energy / au[s].energy < 1.035 for s in ("La1", "Lb1", "Lg1"))
    cal, err = _auto(case)
    assert err <= 30.0 or cal.quality != "good", (err, cal.quality)


def test_a_tube_line_missing_above_no_filters_edge_is_not_excused_by_one():
    # held-out 1210143 (looked at after its run): a W blank behind 25 um of Ni (35 kV, a
    # zero peak). Ni's K edge (8.33 keV, xraydb) lies just below W L-alpha (8.40): the
    # filter takes L-alpha and leaves L-ell. Read 13 % stretched, the L-ell blend is
    # L-alpha, the axis puts L-beta where the filter left nothing, and a Cu filter's edge
    # (8.98 keV) below it excused that, though on that axis the continuum drops half a keV
    # higher, at the real Ni edge: 2.7 keV off at 20 keV and called good. Truth: the
    # case's axis; the wrong one as the run found it
    case = calibration_case(1210143)
    assert case.anode == "W" and case.filter == ("Ni", 25.0) and case.zero_peak == "on"
    ni, cu = (xraydb.xray_edge(el, "K").energy / 1e3 for el in ("Ni", "Cu"))
    w = xraydb.xray_lines("W")
    assert w["Ll"].energy / 1e3 < ni < w["La1"].energy / 1e3 < cu < w["Lb1"].energy / 1e3
    wrong = (0.007803310118075694, -0.6553071565107372)
    assert case.max_error_eV(*wrong) > 2000.0
    quality, checks = assess_calibration(case.counts, *wrong, anode="W", tube_kv=case.tube_kv)
    scatter = next(c for c in checks if c["name"] == "anode scatter")
    assert not scatter["passed"] and "W Lb" in scatter["message"], scatter["message"]
    assert quality != "good"
    cal, err = _auto(case)
    assert err <= 30.0 or cal.quality != "good", (err, cal.quality)


def test_a_zero_peak_is_judged_by_the_width_of_two_lines_not_one():
    # held-out 1210287 (looked at after its run): a Rh blank (50 kV, no filter, a zero peak
    # 0.100 keV wide at the true axis, 0.153 keV at 5.9 keV). Its only fluorescence line
    # above 30 sigma, an Fe K-alpha trace at 37, fitted 132 eV wide where the detector
    # makes 157 (physics.fwhm_keV), so the true axis' zero peak seemed too broad for that
    # detector and was dropped; the axis that read the Rh K-alpha Compton and Rayleigh
    # peaks as Cu and Zn K-alpha kept its (compressed) zero peak, won, and was called good
    # 11.4 keV off. One line's width does not judge the zero peak's; two do
    case = calibration_case(1210287)
    assert case.anode == "Rh" and case.kind == "blank" and case.zero_peak == "on"
    refs, anode_ref, spec, obs = _setup(case.counts, None, case.anode, case.tube_kv)
    weight = max(o.weight for o in obs)
    true = _refine(_Hyp(case.gain_keV, case.offset_keV), obs, refs, spec, anode_ref, weight, "Rh",
                   case.tube_kv)
    lines = [(k, r) for k, r in true.pairs if refs[r].kind == "element" and obs[k].significance >= 30]
    assert [refs[r].name for _k, r in lines] == ["Fe Ka"]
    fe = obs[lines[0][0]]
    expected = float(physics.fwhm_keV(xraydb.xray_lines("Fe")["Ka1"].energy / 1e3, case.fwhm_at_6keV))
    assert fe.fwhm * case.gain_keV < 0.9 * expected  # the one line's width runs low
    assert zero_fwhm6(true.pairs, obs, refs, case.gain_keV) is None
    assert any(refs[r].kind == "zero" for _k, r in true.pairs)
    cal, err = _auto(case)
    assert err <= 30.0 or cal.quality != "good", (err, cal.quality)


def test_a_solution_putting_the_anode_line_beyond_the_axis_is_no_filtered_tube():
    # held-out 1220214 (looked at after its run): a Mo blank (35 kV, 12.5 um Al, no zero
    # peak on the axis) with Ar and a Cu trace. Its true axis is doubtful (Ar K-alpha, the
    # strongest peak, may be Ag L-alpha and move the axis 21 eV), so the solutions without
    # the tube's main line got their turn, as when a filter takes that line; one read the
    # Mo, Cu and Ar K lines as Rb, Fe and Cl K, 26 % compressed, with Mo K-alpha's place
    # beyond the axis' last channel, where nothing can show, passed every check and won:
    # 4.7 keV off at 20 keV and good. Truth: the case's axis
    case = calibration_case(1220214)
    assert case.anode == "Mo" and case.kind == "blank" and case.zero_peak != "on"
    cal, err = _auto(case)
    assert err <= 30.0 or cal.quality != "good", (err, cal.quality)
    mo_ka = xraydb.xray_lines("Mo")["Ka1"].energy / 1e3
    assert cal.offset_keV + cal.gain_keV * (case.counts.size - 1) > mo_ka  # Mo K-alpha on the axis


def _auto(case):
    """The automatic calibration of a synthetic case (its anode and tube voltage) and its
    largest error over 2-20 keV (eV) against the case's true axis."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
    return cal, case.max_error_eV(cal.gain_keV, cal.offset_keV)


def test_a_best_doubtful_for_its_extrapolation_alone_keeps_its_place_against_another_reading():
    # held-out 1260206 (looked at after its run): a Cr blank (30 kV) behind 25 um Ti with
    # an Fe trace. The best-scoring solution is the true axis, doubtful only because its
    # extrapolation to 20 keV is uncertain by 15 eV; a lower-scoring one read Fe K as the
    # tube's Cr K blends and those as Ti and V K-alpha, 16 % compressed, passed every
    # check and was taken: 3.1 keV off and good. Truth: the case's axis
    case = calibration_case(1260206)
    assert case.anode == "Cr" and case.kind == "blank" and case.filter == ("Ti", 25.0)
    cal, err = _auto(case)
    assert err <= 10.0, (err, cal.quality)
    assert cal.quality != "failed"


def test_another_reading_is_one_far_beyond_the_best_ones_stated_uncertainty():
    n = 2048
    coverage = {"name": "coverage", "passed": False, "critical": False, "sigma_eV": 15.0}
    passed = {"name": "zero peak", "passed": True, "critical": True}
    first = Calibration(0.0100, -0.500, quality="doubtful", checks=[passed, coverage])
    # 0.1 % more gain: 20.5 eV more at 20 keV (channel 2050, past the last: 20.5 at 2047)
    near = Calibration(0.01001, -0.500, quality="good", checks=[passed])
    far = Calibration(0.0116, -0.400, quality="good", checks=[passed])
    assert _another_reading(first, far, n)
    assert not _another_reading(first, near, n)  # within 3 x 15 eV: the same reading
    # a best failing another check too, or good, or not judged, is no such best
    resolution = {**coverage, "name": "resolution"}
    twice = Calibration(0.0100, -0.500, quality="doubtful", checks=[coverage, resolution])
    assert not _another_reading(twice, far, n)
    assert not _another_reading(Calibration(0.0100, -0.500, quality="good", checks=[passed]), far, n)
    assert not _another_reading(None, far, n)
    # the least distance holds for a best pinned to a few eV
    tight = Calibration(0.0100, -0.500, quality="doubtful", checks=[{**coverage, "sigma_eV": 2.0}])
    shifted = Calibration(0.0100, -0.480, quality="good", checks=[passed])  # 20 eV everywhere
    assert not _another_reading(tight, shifted, n)
    assert _another_reading(tight, Calibration(0.0100, -0.460, quality="good", checks=[passed]), n)
