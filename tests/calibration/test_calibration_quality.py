"""The verdict on a calibration: each check, on real spectra with right and wrong axes.

Truth: the instrument's own calibrations of the vendored NIST spectra (tests/data/spectra,
public domain): ``.msa`` OFFSET/XPERCHAN and ``.spx`` CalibAbs/CalibLin.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xraydb

from maxrf import physics
from maxrf.calibration import Calibration, auto_calibrate
from maxrf.calibration.verdict import (
    assess_calibration,
    compare_header,
    coverage_check,
    unexplained_check,
    verdict,
)
from maxrf.io.spectra import read_spectrum

DATA = Path(__file__).resolve().parents[1] / "data" / "spectra"
SPX = sorted(DATA.glob("*.spx"))
assert len(SPX) == 10, f"the real .spx spectra are missing from {DATA}"


def _failed(checks):
    return {c["name"] for c in checks if not c["passed"]}


def _max_error_eV(gain, offset, true_gain, true_offset, n):
    ch = np.arange(n)
    e_true = true_offset + true_gain * ch
    m = (e_true >= 2) & (e_true <= 20)
    return float(np.max(np.abs(offset + gain * ch[m] - e_true[m])) * 1e3)


@pytest.fixture(scope="module")
def fe():
    return read_spectrum(DATA / "Fe_50kv_Rh_vac.msa")


@pytest.mark.parametrize("path", SPX, ids=[p.stem for p in SPX])
def test_real_blanks_good_within_10_eV(path):
    """Rh- and Mo-anode acrylic blanks through five filters: scatter only, the hard case."""
    s = read_spectrum(path)
    c = auto_calibrate(s.counts, anode=s.anode, tube_kv=s.tube_kv, header=s.header_calibration)
    g, o = s.header_calibration
    assert _max_error_eV(c.gain_keV, c.offset_keV, g, o, s.counts.size) <= 10.0
    assert c.quality == "good", c.summary()
    names = {ch["name"] for ch in c.checks}
    assert {"residuals", "independent lines", "anode lines", "zero peak", "tube voltage", "header"} <= names
    header = next(ch for ch in c.checks if ch["name"] == "header")
    assert header["passed"] and header["max_difference_eV"] <= 10.0


def test_free_tube_line_weighed_by_its_measured_systematic():
    """Rh_50kv_acryl_f3 (Al 630 um filter): the instrument's weak Ni K-alpha (33 sigma, 2.5
    eV fit error) sits 7 eV above its line on the instrument's axis, as it does, weaker, in
    8 of the 9 other blanks. Rh K-alpha, weighed at the 8 eV of its match tolerance, gave
    way to it: 9.2 eV off at 20 keV. Weighed at the 3 eV its centre is measured to on the
    real blanks, the axis stays within 6 eV of the instrument's."""
    s = read_spectrum(DATA / "Rh_50kv_acryl_f3.spx")
    g, o = s.header_calibration
    c = auto_calibrate(s.counts, anode="Rh", tube_kv=50.0)
    ni = next(p for p in c.peaks if p.name == "Ni Ka")
    assert ni.used and (o + g * ni.channel - ni.keV) * 1e3 > 5.0  # the case: the Ni line off, in the fit
    assert _max_error_eV(c.gain_keV, c.offset_keV, g, o, s.counts.size) <= 6.0
    assert c.quality == "good", c.summary()


def test_peak_between_two_merged_lines_is_explained():
    """The Zr standard's L peak lies between Zr L-alpha and L-beta1 (xraydb), 30 eV and
    50 eV from them on the instrument's axis: the two lines, 0.9 FWHM apart, make one
    peak. An axis known to 2 eV leaves it explained, and says so."""
    import xraydb

    from maxrf.calibration.auto import _setup

    s = read_spectrum(DATA / "Zr_50kv_Rh_vac.msa")
    g, o = s.header_calibration
    refs, anode_ref, _, obs = _setup(np.asarray(s.counts, dtype=np.float64), None, "Rh", 50.0)
    lines = xraydb.xray_lines("Zr")
    la, lb = lines["La1"].energy / 1e3, lines["Lb1"].energy / 1e3
    peak = max((ob for ob in obs if la - 0.1 < o + g * ob.channel < lb + 0.1), key=lambda ob: ob.significance)
    e = o + g * peak.channel
    assert la + 0.02 < e < lb - 0.02 and peak.significance > 1000  # the case: a strong blend
    res = unexplained_check([peak], g, o, refs, anode_ref, 50.0, sigma_eV=2.0)
    assert res["passed"] and res["n"] == 0, res["message"]


def test_right_axis_is_good_and_checks_say_why(fe):
    g, o = fe.header_calibration
    q, checks = assess_calibration(fe.counts, g, o, anode="Rh", tube_kv=50.0)
    assert q == "good" and not _failed(checks)
    by = {c["name"]: c for c in checks}
    assert by["zero peak"]["message"].startswith("zero peak at")
    assert abs(by["zero peak"]["keV"]) < 0.01
    assert "Rh Ka/Kb spacing fits within" in by["anode line spacing"]["message"]
    assert 0.5 < by["resolution"]["fano_ratio"] < 2.0
    assert 100 < by["Compton"]["theta_deg"] < 150


@pytest.mark.parametrize(
    "name, d_offset, gain_factor, failed_check",
    [
        ("offset +30 eV", 0.030, 1.0, "zero peak"),
        ("offset +100 eV", 0.100, 1.0, "independent lines"),
        ("gain +0.3 %", 0.0, 1.003, "independent lines"),
        # Rh K-alpha beyond its window fit's reach, K-beta fitted poorly (32 eV): two
        # peaks left far apart cannot pin the axis (the residuals excuse a peak so poorly
        # known, the coverage does not)
        ("gain +2 %", 0.0, 1.02, "coverage"),
        ("offset -1 keV", -1.0, 1.0, "negative energies"),
    ],
)
def test_wrong_axes_are_never_good(fe, name, d_offset, gain_factor, failed_check):
    g, o = fe.header_calibration
    q, checks = assess_calibration(fe.counts, g * gain_factor, o + d_offset, anode="Rh", tube_kv=50.0)
    assert q != "good", name
    assert failed_check in _failed(checks), (name, checks)


def test_zero_peak_taken_for_fe_ka_fails(fe):
    """The issue's Mo-blank failure: E = 4.99 + 0.01477 x channel."""
    q, checks = assess_calibration(fe.counts, 0.01477, 4.99, anode="Rh", tube_kv=50.0)
    assert q == "failed"
    assert {"anode lines", "resolution"} <= _failed(checks)


def test_tube_voltage_check(fe):
    g, o = fe.header_calibration
    q, checks = assess_calibration(fe.counts, g, o, anode="Rh", tube_kv=15.0)
    assert q == "failed"
    tv = next(c for c in checks if c["name"] == "tube voltage")
    assert not tv["passed"] and tv["critical"] and "above the tube voltage 15 kV" in tv["message"]


def test_verdict_rules():
    ok = {"passed": True, "critical": False}
    ind = {"name": "independent lines", **ok}
    assert verdict([ind, {"name": "a", **ok}]) == "good"
    assert verdict([{"name": "a", **ok}]) == "doubtful"  # nothing independent: not good
    assert verdict([ind, {"name": "b", "passed": False, "critical": False}]) == "doubtful"
    assert verdict([ind, {"name": "c", "passed": False, "critical": True}]) == "failed"


def test_compare_header():
    n = 4096
    same = compare_header(0.01, -0.95, (0.01, -0.95), n)
    assert same["passed"] and same["max_difference_eV"] == pytest.approx(0.0, abs=1e-9)
    # 15 eV offset: within 20 eV; 1 % gain: 200 eV at 20 keV
    assert compare_header(0.01, -0.935, (0.01, -0.95), n)["passed"]
    off = compare_header(0.0101, -0.95, (0.01, -0.95), n)
    assert not off["passed"] and "disagrees" in off["message"]
    assert off["max_difference_eV"] == pytest.approx(0.0001 * (20.0 + 0.95) / 0.01 * 1e3, rel=0.01)
    assert compare_header(0.01, -0.95, None, n) is None


def _peak_at(kev: float, sig: float):
    """A narrow found peak at ``kev`` on the axis E = 0.01 keV x channel, of significance
    ``sig``."""
    from maxrf.calibration.observe import _Obs

    return _Obs(channel=kev / 0.01, err=0.05, fwhm=15.0, significance=sig, weight=sig**0.5, spec=None,
                ok=True, index=int(kev / 0.01), broad=False)


def test_a_sum_peak_explains_a_peak_only_far_weaker_than_its_parents():
    # pile-up sums two photons: a few per mille of its parents' counts, far less
    # significant than they are (dev seed 500062: a peak 0.7 times as significant as the
    # strongest, read as its sum with itself, left an axis 5.2 keV off unrefuted)
    import xraydb

    from maxrf.calibration.references import _reference_lines

    refs = _reference_lines("Rh", 40.0)

    ca, rb = (_xraydb_line(el, ("Ka1", "Ka2")) for el in ("Ca", "Rb"))
    # no main line of Z 11-92 (xraydb), no reference line, no Si escape of either, within
    # 0.14 keV (more than half a FWHM) of their sum
    main = ("Ka1", "Ka2", "Kb1", "Kb3", "La1", "La2", "Lb1", "Ma")
    known = [ln.energy / 1e3 for z in range(11, 93) for k, ln in xraydb.xray_lines(z).items() if k in main]
    known = np.array(known + [r.keV for r in refs])
    assert np.min(np.abs(np.concatenate([known, known - 1.74]) - (ca + rb))) > 0.14
    fitted = [ca / 0.01, rb / 0.01]
    for sum_sig, explained in [(100.0, True), (900.0, True), (1100.0, False), (3000.0, False)]:
        peaks = [_peak_at(ca, 3000.0), _peak_at(rb, 5000.0), _peak_at(ca + rb, sum_sig)]
        res = unexplained_check(peaks, 0.01, 0.0, refs, None, 40.0, fitted=fitted)
        assert res["n"] == (0 if explained else 1), (sum_sig, res)


def test_two_elements_lines_merge_into_one_peak_where_both_elements_show():
    # dev seed 400186 (a Cr tube over As and Hg): As K-beta and Hg L-beta1 (xraydb), 0.1
    # keV apart at 11.8 keV, make one peak between them beside strong As K-alpha and Hg
    # L-alpha peaks; without Hg L-alpha, Hg L-beta is not there to merge with. Closer than
    # 2 detector sigmas, two Gaussians have one maximum, anywhere between them
    from maxrf.calibration.references import _reference_lines

    refs = _reference_lines("Cr", 30.0)

    as_ka, hg_la = _xraydb_line("As", ("Ka1", "Ka2")), _xraydb_line("Hg", ("La1", "La2"))
    as_kb, hg_lb = _xraydb_line("As", ("Kb1", "Kb3")), _xraydb_line("Hg", ("Lb1",))
    assert 0.08 < hg_lb - as_kb < 0.12
    blend = 0.5 * (as_kb + hg_lb)
    fitted = [as_ka / 0.01, hg_la / 0.01]
    both = [_peak_at(as_ka, 1742.0), _peak_at(hg_la, 836.0), _peak_at(blend, 297.0)]
    res = unexplained_check(both, 0.01, 0.0, refs, None, 30.0, sigma_eV=2.0, fitted=fitted)
    assert res["n"] == 0, res
    alone = [_peak_at(as_ka, 1742.0), _peak_at(hg_la + 0.4, 836.0), _peak_at(blend, 297.0)]
    res = unexplained_check(alone, 0.01, 0.0, refs, None, 30.0, sigma_eV=2.0, fitted=fitted[:1])
    assert res["n"] >= 1 and "11.7" in res["message"], res
    # two main lines merge where both elements show at other lines: Ca K-alpha and Sb
    # L-alpha, 86 eV apart (dev seed 400280), beside Ca K-beta and Sb L-gamma1 peaks
    ca_ka, sb_la = _xraydb_line("Ca", ("Ka1", "Ka2")), _xraydb_line("Sb", ("La1", "La2"))
    ca_kb, sb_lg = _xraydb_line("Ca", ("Kb1", "Kb3")), _xraydb_line("Sb", ("Lg1",))
    assert 0.07 < ca_ka - sb_la < 0.1
    blend = sb_la + 0.75 * (ca_ka - sb_la)  # the stronger Ca K-alpha pulls it up
    fitted = [as_ka / 0.01, sb_lg / 0.01]
    # (without a spectrum every companion line counts as shown: Sn L-beta1 at 3.66 keV
    # would explain the peak alone, so Sn is left out of the references)
    refs = tuple(r for r in refs if r.element != "Sn")
    seen = [_peak_at(as_ka, 5000.0), _peak_at(blend, 4500.0), _peak_at(ca_kb, 400.0), _peak_at(sb_lg, 300.0)]
    res = unexplained_check(seen, 0.01, 0.0, refs, None, 30.0, sigma_eV=2.0, fitted=fitted)
    assert res["passed"] and res["message"] == "every strong peak is explained", res
    # either alone: Ca K-beta's peak taken away (Sb's lines are no proof of Ca), the peak
    # is at no common element's line
    no_ca = [seen[0], seen[1], seen[3]]
    res = unexplained_check(no_ca, 0.01, 0.0, refs, None, 30.0, sigma_eV=2.0, fitted=fitted)
    assert not res["passed"] and "4500 sigma" in res["message"], res
    # a minor line (Sb L-l, 4 % of L-alpha) beside its main line's far stronger peak,
    # though the blend pulled that peak 65 eV off L-alpha, beyond half a FWHM
    from maxrf.calibration.match import _fwhm_at
    from maxrf.calibration.unexplained import _known, _minor_lines

    sb_ll = _xraydb_line("Sb", ("Ll",))
    half = 0.5 * float(_fwhm_at(sb_ll))
    assert 0.5 * float(_fwhm_at(blend)) < blend - sb_la < 2 * half
    none = np.array([])
    for parent, explained in [(blend, True), (sb_la + 4 * half, False)]:
        observed = (np.array([parent, sb_ll]), np.array([4500.0, 236.0]))
        known = _known(sb_ll, 236.0, (none, 0.015), half, none, (none, none), observed, np.zeros((2, 0)),
                       _minor_lines(("Sb",), 30.0), [])
        assert known is explained, parent


def test_unexplained_and_coverage_checks():
    from maxrf.calibration.observe import _Obs
    from maxrf.calibration.references import _reference_lines

    refs = _reference_lines("Rh", 40.0)

    def ob(ch, sig=500.0):
        return _Obs(channel=ch, err=0.05, fwhm=15.0, significance=sig, weight=sig**0.5, spec=None, ok=True,
                    index=int(ch), broad=False)

    # two energies 140 eV (more than half a FWHM) from the xraydb main lines of Z 11-92
    # and from the common elements' reference lines, and from their Si escape peaks: peaks
    # there are unexplained; Fe Ka is not
    import xraydb

    main = ("Ka1", "Ka2", "Kb1", "La1", "Lb1", "Ma")
    known = [ln.energy / 1e3 for z in range(11, 93) for k, ln in xraydb.xray_lines(z).items() if k in main]
    known = np.array(known + [r.keV for r in refs])
    known = np.concatenate([known, known - 1.74])
    grid = np.arange(2.0, 18.4, 0.005)  # below the Compton range of Rh K-alpha
    free = grid[np.min(np.abs(grid[:, None] - known[None, :]), axis=1) > 0.14]
    free = free[(np.abs(free - 2 * 6.40) > 0.5) & (np.abs(free - 6.40) > 0.5)]
    e1, e2 = float(free[-1]) - 0.02, float(free[-1])
    assert e2 - e1 > 0.01
    lines = [ob(640.0), ob(e1 / 0.01), ob(e2 / 0.01)]
    res = unexplained_check(lines, 0.01, 0.0, refs, None, 40.0)
    assert not res["passed"] and res["n"] == 2 and "2 strong peak(s) unexplained" in res["message"]
    assert unexplained_check(lines[:1], 0.01, 0.0, refs, None, 40.0)["passed"]
    # one unexplained peak passes, unless it is more significant than every peak the fit
    # uses but the strongest (Fe Ka, Rh Ka at their channels)
    rh_ka = next(r for r in refs if r.name == "Rh Ka").keV
    fitted = [640.0, rh_ka / 0.01]
    weak = [ob(640.0, 3000.0), ob(rh_ka / 0.01, 300.0), ob(e2 / 0.01, 200.0)]
    assert unexplained_check(weak, 0.01, 0.0, refs, None, 40.0, fitted=fitted)["passed"]
    strong = [ob(640.0, 3000.0), ob(rh_ka / 0.01, 100.0), ob(e2 / 0.01, 200.0)]
    res = unexplained_check(strong, 0.01, 0.0, refs, None, 40.0, fitted=fitted)
    assert not res["passed"] and res["n"] == 1 and "above all fitted peaks but one" in res["message"]
    # below 50 sigma a peak is judged when the fitted peaks are as weak (their median),
    # and not below 15 sigma
    for fit_sig, sig, judged in [(3000.0, 45.0, False), (40.0, 45.0, True), (40.0, 35.0, False),
                                 (12.0, 14.0, False), (12.0, 16.0, True)]:
        peaks = [ob(640.0, fit_sig), ob(rh_ka / 0.01, fit_sig), ob(e1 / 0.01, sig), ob(e2 / 0.01, sig)]
        res = unexplained_check(peaks, 0.01, 0.0, refs, None, 40.0, fitted=fitted)
        assert res["n"] == (2 if judged else 0) and res["passed"] is not judged, (fit_sig, sig, res)
    # a peak anywhere between the components of a line is explained: Sn K-alpha1 and
    # K-alpha2 (xraydb) make one peak whose top is near K-alpha1, far above the centroid
    sn = xraydb.xray_lines("Sn")
    ka1, ka2 = sn["Ka1"].energy / 1e3, sn["Ka2"].energy / 1e3
    sn_ka = next(r for r in refs if r.name == "Sn Ka")
    assert ka1 - sn_ka.keV > 0.05
    top = [ob(640.0, 3000.0), ob(rh_ka / 0.01, 3000.0), ob(ka1 / 0.01, 500.0), ob(ka2 / 0.01, 500.0)]
    res = unexplained_check(top, 0.01, 0.0, refs, None, 40.0, sigma_eV=2.0, fitted=fitted)
    assert res["n"] == 0, res["message"]
    # two fitted peaks 0.1 keV apart cannot pin 2-20 keV; zero peak + 20 keV can
    fe_ka = next(r for r in refs if r.name == "Fe Ka")
    fe_kb = next(r for r in refs if r.name == "Fe Kb")
    close = [(fe_ka, 640.0, 0.05, True), (fe_kb, 705.9, 0.05, True)]
    assert not coverage_check(close, 0.01, 0.0, 2048)["passed"]
    zero = next(r for r in refs if r.kind == "zero")
    rh = next(r for r in refs if r.name == "Rh Ka")
    wide = [(zero, 0.0, 0.02, True), (fe_ka, 640.0, 0.05, True), (rh, rh.keV / 0.01, 0.05, True)]
    assert coverage_check(wide, 0.01, 0.0, 2048)["passed"]


def test_verdict_round_trips_and_summarises(fe):
    c = auto_calibrate(fe.counts, anode="Rh", tube_kv=50.0, header=fe.header_calibration)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["quality"] == "good" and isinstance(d["checks"], list)
    back = Calibration.from_dict(d)
    assert back.quality == c.quality and back.checks == json.loads(json.dumps(c.checks))
    assert c.summary().startswith("calibration good: ")
    assert set(c.residuals_eV) == {p.name for p in c.peaks}
    # a store written before the verdict existed: the old diagnostics dict
    old = dict(d, quality={"score": 1.0})
    old.pop("checks")
    back = Calibration.from_dict(old)
    assert back.quality is None and back.diagnostics == {"score": 1.0}


def test_resolution_check_takes_the_spread_of_line_groups_out():
    # single lines and line groups as a detector shows them: FWHM^2 = noise^2 + 2.355^2 *
    # 0.115 * 3.65 eV * E (silicon's Fano factor and pair energy, not the code's constant)
    # for each component, the group's components spread by their xraydb energies
    import math

    import xraydb

    from maxrf.calibration.observe import _Obs
    from maxrf.calibration.references import _reference_lines
    from maxrf.calibration.verdict import resolution_check

    fano_slope = 2.355**2 * 0.115 * 3.65e-3  # keV
    names = ("Ca Ka", "Fe Ka", "Au Lb", "Mo Ka", "Cd Ka", "Sn Ka")
    refs = {r.name: r for r in _reference_lines("Rh", 40.0) if r.name in names}
    assert set(refs) == set(names)
    gain, offset = 0.01, 0.0
    entries, obs = [], []
    for r in refs.values():
        e = np.array([c[0] for c in r.components])
        w = np.array([c[1] for c in r.components])
        # the components as xraydb has them (the group's width comes from the truth)
        lines = xraydb.xray_lines(r.element)
        assert all(any(abs(ln.energy / 1e3 - ek) < 1e-4 for ln in lines.values()) for ek in e)
        mean = float(np.sum(w * e) / np.sum(w))
        spread = 2.355 * math.sqrt(float(np.sum(w * (e - mean) ** 2) / np.sum(w)))
        fwhm = math.hypot(math.sqrt(0.08**2 + fano_slope * r.keV), spread)
        ch = (r.keV - offset) / gain
        entries.append((r, ch, 0.05, True))
        obs.append(_Obs(channel=ch, err=0.05, fwhm=fwhm / gain, significance=100.0, weight=10.0,
                        spec=None, ok=True, index=int(ch), broad=False))
    res = resolution_check(entries, [], obs, gain, offset)
    assert res is not None and res["passed"]
    assert res["fano_ratio"] == pytest.approx(1.0, abs=0.25)


def _width_probes(widths_keV: dict[str, float]):
    """Probes of element lines (of a Rh-tube reference set) found with the given widths."""
    from maxrf.calibration.quality import Probe
    from maxrf.calibration.references import _reference_lines

    refs = {r.name: r for r in _reference_lines("Rh", 40.0) if r.name in widths_keV}
    assert set(refs) == set(widths_keV)
    out = []
    for n, w in widths_keV.items():
        # a K-alpha1,2 group is wider than one line by its components' spread
        e = np.array([c[0] for c in refs[n].components])
        a = np.array([c[1] for c in refs[n].components])
        spread = 2.3548 * math.sqrt(float(np.sum(a * (e - np.average(e, weights=a)) ** 2) / np.sum(a)))
        out.append(Probe(ref=refs[n], residual_eV=0.0, err_eV=0.5, significance=200.0,
                         fwhm_keV=math.hypot(w, spread)))
    return out


def _fano_fwhm(keV: float, noise_keV: float = 0.08, slope_factor: float = 1.0) -> float:
    # silicon by hand: 2.355^2 x Fano 0.114 x 3.85 eV per pair
    return math.sqrt(noise_keV**2 + slope_factor * 2.3548**2 * 0.114 * 3.85e-3 * keV)


def test_resolution_check_needs_evidence_before_it_fails_an_axis():
    from maxrf.calibration.verdict import resolution_check

    # three lines within 4 keV, the highest one 25 % narrower than the detector makes it
    # (a peak fitted on a neighbour's flank): a straight line through the squared widths
    # has a slope far below the Fano slope, but three close lines barely measure it
    widths = {"Ca Ka": _fano_fwhm(3.69), "Ti Ka": _fano_fwhm(4.51), "Ni Ka": 0.75 * _fano_fwhm(7.47)}
    e = np.array([3.69, 4.51, 7.47])
    slope = np.polyfit(e, np.array(list(widths.values())) ** 2, 1)[0]
    assert slope / physics.FANO_SLOPE < 0.0  # the unweighted law: "no detector"
    res = resolution_check([], _width_probes(widths), [], 0.01, 0.0)
    assert res is not None and not res["critical"], res["message"]


def test_resolution_check_passes_the_true_axis_of_a_spectrum_with_close_lines():
    from maxrf.synth_spectra import calibration_case

    # dev seed 500558 (Sb and an Ag tube, 16 eV per channel): the zero peak, Sb L-alpha and
    # L-gamma1 (27 % narrower than the detector makes it, beside L-beta2) span 4.3 keV;
    # the law fitted to them alone had 0.14 x the Fano slope and failed the true axis
    case = calibration_case(500558)
    assert case.anode == "Ag" and "Sb" in case.elements
    quality, checks = assess_calibration(case.counts, case.gain_keV, case.offset_keV, anode="Ag",
                                         tube_kv=case.tube_kv)
    res = next(c for c in checks if c["name"] == "resolution")
    assert res["passed"], res["message"]
    assert quality == "good"


@pytest.mark.parametrize("factor, critical", [(1.0, None), (3.0, False), (8.0, True)])
def test_resolution_check_breaks_on_widths_a_detector_cannot_make(factor, critical):
    from maxrf.calibration.verdict import resolution_check

    # five well-spread lines whose widths grow 'factor' times as fast as silicon allows
    lines = {"Ca Ka": 3.69, "Fe Ka": 6.40, "Zn Ka": 8.64, "Sr Ka": 14.14, "Mo Ka": 17.44}
    widths = {n: _fano_fwhm(e, slope_factor=factor) for n, e in lines.items()}
    res = resolution_check([], _width_probes(widths), [], 0.01, 0.0)
    assert res is not None
    assert res["fano_ratio"] == pytest.approx(factor, rel=0.1)
    if critical is None:
        assert res["passed"], res["message"]
    else:
        assert not res["passed"] and res["critical"] is critical, res["message"]


def test_residual_check_counts_an_uncertain_peak_in_its_own_uncertainty():
    from maxrf.calibration.references import _reference_lines
    from maxrf.calibration.verdict import residual_check

    # five peaks on an axis E = 0.01 keV x channel: four land within 3 eV, Rh K-alpha 38 eV
    # off (the real Cr standard's, tests/data/spectra). The rms of all five is 17 eV; known
    # to 1 eV the outlier fails the check, known to 20 eV (its Compton flank's model) it
    # does not, and the same residuals on every peak fail it whatever their uncertainties
    refs = {r.name: r for r in _reference_lines("Rh", 50.0)}
    names = ["zero", "Cr Ka", "Cr Kb", "Fe Ka", "Rh Ka"]
    off_eV = [0.5, -2.0, 3.0, -1.0, -38.0]
    gain = 0.01

    def entries(err_eV):
        return [(refs[n], (refs[n].keV + d * 1e-3) / gain, e * 1e-3 / gain, True)
                for n, d, e in zip(names, off_eV, err_eV)]

    assert not residual_check(entries([0.5, 0.5, 0.5, 0.5, 1.0]), gain, 0.0)["passed"]
    res = residual_check(entries([0.5, 0.5, 0.5, 0.5, 20.0]), gain, 0.0)
    assert res["passed"] and res["rms_eV"] == pytest.approx(math.sqrt(np.mean(np.square(off_eV))))
    off_eV[:] = [-18.0, 19.0, -18.0, 19.0, -18.0]
    assert not residual_check(entries([0.5, 0.5, 0.5, 0.5, 20.0]), gain, 0.0)["passed"]


@pytest.mark.parametrize("seed", [400273, 500101, 500362])
def test_a_sample_line_below_the_tube_k_beta_is_not_its_evidence(seed):
    from maxrf.calibration import refine_calibration
    from maxrf.synth_spectra import calibration_case

    # Rh tubes behind Cu or Ni, samples holding Ag: Ag K-alpha (22.1 keV) lies 0.6 keV
    # below Rh K-beta, between it and its Compton peak, and was counted as Rh K-beta's
    # evidence, three times Rh K-alpha's: the true axis "failed" (the anode lines lie off)
    case = calibration_case(seed)
    assert case.anode == "Rh" and "Ag" in case.elements
    # the counts themselves (independent of the check): Rh K-alpha's peak is the higher
    ch = lambda e: int(round((e - case.offset_keV) / case.gain_keV))  # noqa: E731
    ka, kb = (case.counts[ch(e) - 2:ch(e) + 3].sum() for e in (20.216, 22.724))
    assert ka > 2.0 * kb
    kw = {"anode": case.anode, "tube_kv": case.tube_kv}
    cal = refine_calibration(case.counts, case.gain_keV, case.offset_keV, **kw)
    assert _max_error_eV(cal.gain_keV, cal.offset_keV, case.gain_keV, case.offset_keV, case.counts.size) < 10
    anode = next(c for c in cal.checks if c["name"] == "anode lines")
    assert not anode["critical"]
    assert cal.quality != "failed"


def _phosphate_spectrum(zero_at_keV: float | None) -> tuple[np.ndarray, float, float]:
    """A bone-black-like spectrum: strong P K (2.01 keV, its Si escape at 0.27 keV), Ca K
    and a weak continuum, with a noise peak at ``zero_at_keV`` (None: none); physics
    templates on a known axis, Poisson counts."""
    gain, offset = 0.010, -0.15
    e = offset + gain * np.arange(2048)
    lam = (2e6 * physics.element_spectrum("P", e, fwhm_at_6keV=0.13)
           + 5e5 * physics.element_spectrum("Ca", e, fwhm_at_6keV=0.13) + 3.0)
    if zero_at_keV is not None:
        lam = lam + 1e5 * physics.zero_peak(e - zero_at_keV, 0.06)
    return np.random.default_rng(7).poisson(lam).astype(float), gain, offset


@pytest.mark.parametrize("zero_at_keV", [None, 0.0, 0.27, 0.15])
def test_the_escape_of_a_strong_line_near_2_keV_is_not_a_zero_peak(zero_at_keV):
    from maxrf.calibration.explain import escape_of_stronger
    from maxrf.calibration.observe import _observe, _prepare
    from maxrf.calibration.verdict import zero_checks

    counts, gain, offset = _phosphate_spectrum(zero_at_keV)
    obs = _observe(_prepare(counts, "sum"))
    e = [offset + gain * o.channel for o in obs]
    # the escape of P K-alpha (xraydb: 2.014 - 1.740 keV) is observed, and is judged one
    esc = float(physics.escape_energy(2.0137))
    k = min(range(len(obs)), key=lambda i: abs(e[i] - esc))
    if zero_at_keV is None:
        assert abs(e[k] - esc) < 0.02 and escape_of_stronger(obs, k, gain, offset)
    zero = next(c for c in zero_checks(obs, gain, offset, counts.size) if c["name"] == "zero peak")
    if zero_at_keV in (None, 0.0):  # no zero peak, or one at 0 keV: the check passes
        assert zero["passed"], zero
    else:  # a noise peak off 0 keV, escape or not, still fails it
        assert not zero["passed"] and zero["critical"], zero


@pytest.mark.parametrize("seed, anode", [(1100063, "Cr"), (1100106, "W"), (980070, None)])
def test_a_tube_line_a_primary_filter_absorbs_makes_a_right_axis_doubtful_not_failed(seed, anode):
    # dev seeds with the anode forced: a Ti filter takes a Cr tube's K-alpha (no Rayleigh
    # line where the axis puts it), a Ni filter a W tube's L-alpha (its blend fit lands
    # 70-120 eV low, on the Ni edge's step, or 140 eV high where the filtered continuum
    # rises again: held-out 980070, a W tube drawn, looked at after its run); truth: the
    # case's axis and its filter
    from maxrf.calibration import refine_calibration
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(seed, anode=anode)
    assert case.filter is not None and case.anode == (anode or "W")
    cal = refine_calibration(case.counts, case.gain_keV, case.offset_keV, anode=case.anode,
                             tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    assert cal.quality == "doubtful"
    scatter = next(c for c in cal.checks if c["name"] == "anode scatter")
    assert not scatter["passed"] and not scatter["critical"]
    assert f"a primary filter of {case.filter[0]} " in scatter["message"]
    assert all(c["passed"] for c in cal.checks if c is not scatter)


def test_a_tube_line_beside_a_filter_edge_step_is_measured_on_the_right_axis():
    # dev seed 1100131 with a W tube forced, behind 25 um of Ni: the Ni K edge (8.33 keV,
    # xraydb) lies inside the W L-alpha blend's window and leaves 7e-4 of L-alpha1; fitted
    # with a straight background the line lands 116 eV low, on the edge. With the edge's
    # step, as the precise fit has it, the line is found within 20 eV of its place and the
    # right axis is good (it was doubtful: "a primary filter of Ni would absorb the line")
    from maxrf.calibration import refine_calibration
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1100131, anode="W")
    assert case.filter == ("Ni", 25.0)
    edge = xraydb.xray_edge("Ni", "K").energy / 1e3
    la = [xraydb.xray_lines("W")[n].energy / 1e3 for n in ("La1", "La2")]
    assert all(0.0 < e - edge < 0.07 for e in la)
    cal = refine_calibration(case.counts, case.gain_keV, case.offset_keV, anode=case.anode,
                             tube_kv=case.tube_kv)
    assert case.max_error_eV(cal.gain_keV, cal.offset_keV) <= 10.0
    scatter = next(c for c in cal.checks if c["name"] == "anode scatter")
    assert scatter["passed"] and abs(scatter["residuals_eV"]["W La"]) <= 20.0, scatter["message"]
    assert cal.quality == "good"


def test_a_missing_tube_line_stays_critical_unless_a_filter_takes_it_and_all_else_passes():
    from maxrf.calibration.verdict import filtered_tube_line

    cr_ka = physics.line_energy("Cr", "Ka1")
    gone = {"name": "anode scatter", "passed": False, "critical": True,
            "message": "no Rayleigh line of Cr Ka", "main_keV": cr_ka, "main_gone": True}
    ok = [{"name": n, "passed": True, "critical": False, "message": ""}
          for n in ("residuals", "unexplained peaks")]
    out = filtered_tube_line(gone, ok)
    assert not out["critical"] and not out["passed"] and "Ti (K edge 4.97 keV)" in out["message"]
    # another check failing (a strong peak unexplained, as a wrong axis leaves the tube's
    # own peaks; a line at a continuum cliff...): the missing line refutes the axis
    assert filtered_tube_line(gone, [ok[0], {**ok[1], "passed": False}])["critical"]
    # no filter's K edge within 1 keV below the line (Mo K-alpha, 17.48 keV)
    assert filtered_tube_line({**gone, "main_keV": physics.line_energy("Mo", "Ka1")}, ok)["critical"]
    # the main line measured, not far off (a companion's fit made the check critical)
    assert filtered_tube_line({**gone, "main_gone": False}, ok)["critical"]


def _refine_quiet(case, gain: float, offset: float):
    """The calibration of ``case`` refined from ``gain``, ``offset`` (keV), its warnings
    silenced."""
    import warnings

    from maxrf.calibration import refine_calibration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return refine_calibration(case.counts, gain, offset, anode=case.anode, tube_kv=case.tube_kv)


def _refine_reading(case, *readings: tuple[float, float]):
    """:func:`_refine_quiet` from the axis that reads two peaks of ``case`` at true
    energies (keV) as other energies: ``(true_keV, read_keV)`` pairs, the zero peak as
    ``(0.0, 0.0)``."""
    (e1, r1), (e2, r2) = readings
    c1, c2 = ((e - case.offset_keV) / case.gain_keV for e in (e1, e2))
    g = (r2 - r1) / (c2 - c1)
    return _refine_quiet(case, g, r1 - g * c1)


def _xraydb_line(el: str, names: tuple[str, ...]) -> float:
    """Intensity-weighted energy (keV) of an element's lines (xraydb)."""
    import xraydb

    lines = xraydb.xray_lines(el)
    e = [lines[k].energy for k in names if k in lines]
    w = [lines[k].intensity for k in names if k in lines]
    return float(np.average(e, weights=w)) / 1e3


def test_a_faint_spectrums_wrong_axis_that_leaves_its_peaks_unexplained_is_not_good():
    # a Ag tube at 50 kV behind 50 um Cu with As, Ba (dev 1020184): As K-alpha read as Cr
    # K-alpha about the zero peak (xraydb energies), the gain halved. Every fitted peak is
    # below 90 sigma, and Ba K-alpha (36 sigma) lands at no common line: below the fixed
    # 50 sigma, that axis passed every check, "good" 9.7 keV off
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1020184)
    assert {"As", "Ba"} <= set(case.elements)
    as_ka, cr_ka = (_xraydb_line(el, ("Ka1", "Ka2")) for el in ("As", "Cr"))
    wrong = _refine_reading(case, (0.0, 0.0), (as_ka, cr_ka))
    right = _refine_quiet(case, case.gain_keV, case.offset_keV)
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 500.0
    assert wrong.quality != "good"
    assert _failed(wrong.checks) == {"unexplained peaks"}, wrong.checks
    # the true axis explains its peaks
    assert case.max_error_eV(right.gain_keV, right.offset_keV) < 10.0
    assert "unexplained peaks" not in _failed(right.checks)


def test_independent_lines_each_within_their_sigmas_can_be_off_together():
    # two probes each 2-3 sigma off are jointly as unlikely on a right axis as one probe 3
    # sigma off; the bound for two is chi-square's with 2 degrees of freedom, whose tail is
    # exp(-x / 2), at the chance of one line beyond 3 sigma (erfc(3 / sqrt 2))
    from maxrf.calibration.quality import _independent_verdict

    chance = math.erfc(3.0 / math.sqrt(2.0))
    off = [("V Ka", 38.0, 13.0), ("Rb Kb", -38.0, 20.0)]
    assert all(abs(r) < 3.0 * s for _n, r, s in off)
    x = sum((r / s) ** 2 for _n, r, s in off)
    assert math.exp(-x / 2.0) < chance
    strict = {"V Ka", "Rb Kb"}
    joint = _independent_verdict(off, strict)
    assert not joint["passed"] and "together" in joint["message"], joint
    # 2 sigma each is within the bound: exp(-4) > 0.0027
    near = [("V Ka", 26.0, 13.0), ("Rb Kb", -40.0, 20.0)]
    assert math.exp(-sum((r / s) ** 2 for _n, r, s in near) / 2.0) > chance
    assert _independent_verdict(near, strict)["passed"]
    # leave-one-out predictions share the fit's points: not in the joint sum
    assert _independent_verdict(off, strict, n_lines=1)["passed"]
    # below the per-line floor (25 eV) a residual is never off, alone or jointly
    assert _independent_verdict([("V Ka", 20.0, 5.0), ("Rb Kb", -20.0, 5.0)], strict)["passed"]


def test_an_axis_whose_independent_lines_are_off_together_is_not_good():
    # held-out 1090027, a Cr tube at 35 kV behind 25 um Ti over Zr, zero peak off the
    # axis: read with Zr L-alpha as S K-alpha and Zr K-alpha as Rb K-alpha (xraydb), V
    # K-alpha and Rb K-beta land about 2.9 and 1.9 of their sigmas off on either side.
    # Each within 3 sigma, that axis passed every check, "good" 3.2 keV off
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1090027)
    assert case.anode == "Cr" and "Zr" in case.elements
    zr_la, zr_ka = (_xraydb_line("Zr", names) for names in (("La1", "La2"), ("Ka1", "Ka2")))
    s_ka, rb_ka = (_xraydb_line(el, ("Ka1", "Ka2")) for el in ("S", "Rb"))
    wrong = _refine_reading(case, (zr_la, s_ka), (zr_ka, rb_ka))
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 2000.0
    ind = next(c for c in wrong.checks if c["name"] == "independent lines")
    assert not ind["passed"] and "together" in ind["message"], ind
    assert wrong.quality != "good"


def test_an_axis_that_reads_a_main_peak_as_a_sum_peak_is_not_good():
    # dev seed 500062, a Cr tube at 35 kV behind 50 um Cu over Fe, Zn, Sr, Au, Sb: read
    # with Fe K-alpha as the tube's Cr K-alpha and Zn K-alpha as Co K-alpha (xraydb), the
    # axis, 5.2 keV off, put Sr K-alpha (0.7 times as significant as Fe K-alpha) at twice
    # Fe K-alpha's place, a sum peak by place alone, and passed every check
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(500062)
    assert case.anode == "Cr" and {"Fe", "Zn", "Sr"} <= set(case.elements)
    fe, zn, cr, co, sr = (_xraydb_line(el, ("Ka1", "Ka2")) for el in ("Fe", "Zn", "Cr", "Co", "Sr"))
    wrong = _refine_reading(case, (fe, cr), (zn, co))
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 2000.0
    # Sr K-alpha sits at the doubled Fe K-alpha on that axis
    fe_ch, sr_ch = ((e - case.offset_keV) / case.gain_keV for e in (fe, sr))
    on_wrong = lambda ch: wrong.offset_keV + wrong.gain_keV * ch  # noqa: E731
    assert abs(on_wrong(sr_ch) - 2 * on_wrong(fe_ch)) < 0.1
    assert "unexplained peaks" in _failed(wrong.checks), wrong.checks
    assert wrong.quality != "good"


def test_a_strong_peak_is_explained_within_the_axis_uncertainty_at_its_own_energy():
    # dev seed 500067, a Cu tube at 45 kV over Ni, Co, Zn, Pb, Cl: read with Ni K-alpha as
    # Cr K-alpha and Co K-alpha as V K-alpha (xraydb), the axis, 4.1 keV off, is
    # uncertain by 12 eV at its ends, and Zn K-alpha (the second strongest peak) lands
    # 26 eV from Fe K-alpha, inside three times that. Between the fitted lines the axis
    # is known to a few eV: there Zn K-alpha is at no line
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(500067)
    assert case.anode == "Cu" and {"Ni", "Co", "Zn"} <= set(case.elements)
    ni, co, cr, v, zn, fe = (_xraydb_line(el, ("Ka1", "Ka2")) for el in ("Ni", "Co", "Cr", "V", "Zn", "Fe"))
    wrong = _refine_reading(case, (ni, cr), (co, v))
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 2000.0
    zn_read = wrong.offset_keV + wrong.gain_keV * (zn - case.offset_keV) / case.gain_keV
    assert 0.015 < abs(zn_read - fe) < 0.04  # within 3 worst-case sigmas of Fe K-alpha
    assert "unexplained peaks" in _failed(wrong.checks), wrong.checks
    assert wrong.quality != "good"


def test_a_peak_inside_a_wide_line_group_is_not_explained_by_it():
    # held-out 1070034, a Cu tube over As, Zn, Mn: the axis read 1.34 times too steep
    # (found by the automatic search) puts Zn K-alpha (106 sigma) between Au L-beta's
    # components, 96 eV above their centroid. Explained by that group's span, the axis
    # passed every check 6.9 keV off; only the K-alpha doublet's span explains a peak
    import warnings

    import xraydb

    from maxrf.calibration import refine_calibration
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1070034)
    assert "Zn" in case.elements
    zn = _xraydb_line("Zn", ("Ka1", "Ka2"))
    au_lb = [ln.energy / 1e3 for k, ln in xraydb.xray_lines("Au").items() if k.startswith("Lb")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrong = refine_calibration(case.counts, 0.02034, -0.9565, anode=case.anode, tube_kv=case.tube_kv)
    zn_ch = (zn - case.offset_keV) / case.gain_keV
    zn_read = wrong.offset_keV + wrong.gain_keV * zn_ch
    assert min(au_lb) < zn_read < max(au_lb)
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 1000.0
    assert wrong.quality != "good"
    assert "unexplained peaks" in _failed(wrong.checks)


def test_a_companion_line_explains_a_peak_only_with_its_main_line():
    # a Cr blank (dev 400172): the axis through the zero peak that reads the scattered Cr
    # K-alpha, the spectrum's strongest peak, as Sn L-gamma1 (xraydb). Explained by that
    # companion line with nothing at Sn L-alpha, the axis passed every check 4.7 keV off
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(400172)
    assert case.anode == "Cr" and case.kind == "blank" and "Sn" not in case.elements
    cr_ka, sn_lg = _xraydb_line("Cr", ("Ka1", "Ka2")), _xraydb_line("Sn", ("Lg1",))
    wrong = _refine_reading(case, (0.0, 0.0), (cr_ka, sn_lg))
    right = _refine_quiet(case, case.gain_keV, case.offset_keV)
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 1000.0
    assert wrong.quality != "good"
    unexplained = next(c for c in wrong.checks if c["name"] == "unexplained peaks")
    assert not unexplained["passed"], unexplained
    # the true axis explains its peaks, the escape of Cr K-alpha beside its parent too
    assert case.max_error_eV(right.gain_keV, right.offset_keV) < 10.0
    assert "unexplained peaks" not in _failed(right.checks)


def test_a_main_line_merged_into_a_neighbours_peak_still_vouches_for_its_companion():
    # dev 500118 (a Ag tube over Fe, K, Ca, Sn, Ag): Sn L-alpha lies 130 eV above K
    # K-alpha and makes no peak of its own; Sn L-beta1 is in the strong peak at 3.67 keV
    # with Ca K-alpha. The counts above the baseline at Sn L-alpha show it there
    import warnings

    from maxrf.calibration import refine_calibration
    from maxrf.calibration.auto import _setup
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(500118)
    assert {"Sn", "K", "Ca"} <= set(case.elements)
    _refs, _anode, _spec, obs = _setup(case.counts, None, case.anode, case.tube_kv)
    e = np.array([case.offset_keV + case.gain_keV * o.channel for o in obs])
    sn_la, k_ka = _xraydb_line("Sn", ("La1", "La2")), _xraydb_line("K", ("Ka1", "Ka2"))
    assert np.min(np.abs(e - sn_la)) > 0.5 * physics.fwhm_keV(sn_la, 0.15)  # no peak of its own
    assert np.min(np.abs(e - k_ka)) < 0.03
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        right = refine_calibration(case.counts, case.gain_keV, case.offset_keV, anode=case.anode,
                                   tube_kv=case.tube_kv)
    assert case.max_error_eV(right.gain_keV, right.offset_keV) < 10.0
    assert "unexplained peaks" not in _failed(right.checks)


def test_a_tube_lines_escape_is_no_stronger_than_its_parent():
    # the same Cr blank: a hypothesis matching the strongest peak to the Si escape of the
    # tube's K-beta, whose own place holds no comparable peak, is refuted; on the true
    # axis the escape of Cr K-alpha (physics.escape_fraction of its height) is not
    import warnings

    from maxrf.calibration.auto import _setup
    from maxrf.calibration.explain import orphan_escapes
    from maxrf.calibration.hypotheses import _Hyp, _refine
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(400172)
    refs, anode_ref, spec, obs = _setup(case.counts, None, case.anode, case.tube_kv)
    top = max(range(len(obs)), key=lambda k: obs[k].height)
    weight = max(o.weight for o in obs)
    n = case.counts.size
    cr_ka = _xraydb_line("Cr", ("Ka1", "Ka2"))
    # the escape of the tube's scattered K-beta blend, as the hypotheses place it
    kb_escape = next(r for r in refs if r.kind == "escape" and r.name.startswith("Cr Kb"))
    assert abs(kb_escape.keV - float(physics.escape_energy(_xraydb_line("Cr", ("Kb1", "Kb3"))))) < 0.1
    zero_ch = -case.offset_keV / case.gain_keV
    g = kb_escape.keV / (obs[top].channel - zero_ch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrong = _refine(_Hyp(g, -g * zero_ch), obs, refs, spec, anode_ref, weight, case.anode, case.tube_kv)
        right = _refine(_Hyp(case.gain_keV, case.offset_keV), obs, refs, spec, anode_ref, weight, case.anode,
                        case.tube_kv)
    escape_of_top = [(k, r) for k, r in wrong.pairs if k == top and refs[r].kind == "escape"]
    assert escape_of_top, [refs[r].name for _k, r in wrong.pairs]
    assert set(escape_of_top) <= orphan_escapes(wrong.pairs, obs, refs, wrong.gain, wrong.offset, n)
    assert set(escape_of_top) <= wrong.refuted
    escapes = [(k, r) for k, r in right.pairs if refs[r].kind == "escape"]
    ka_escape = float(physics.escape_energy(cr_ka))
    assert any(abs(refs[r].keV - ka_escape) < 0.1 for _k, r in escapes)
    assert not orphan_escapes(right.pairs, obs, refs, right.gain, right.offset, n)


def test_a_main_peak_at_a_soft_energy_is_a_soft_line_beside_its_elements_strongest():
    # below 0.9 keV only the light elements' K lines stand alone; an L line needs its
    # element's K-alpha, far stronger (Fe L-alpha is a few per cent of it, xraydb)
    from maxrf.calibration.unexplained import soft_peaks_check

    o_ka, fe_la = _xraydb_line("O", ("Ka1", "Ka2")), _xraydb_line("Fe", ("La1", "La2"))
    fe_ka, pb_la, pb_lb = (_xraydb_line(el, n) for el, n in
                           [("Fe", ("Ka1", "Ka2")), ("Pb", ("La1", "La2")), ("Pb", ("Lb1",))])
    lines = [_peak_at(fe_ka, 20000.0), _peak_at(pb_la, 3000.0), _peak_at(pb_lb, 2000.0)]
    fitted = [p.channel for p in lines]

    def judged(kev, sig, peaks=lines):
        return soft_peaks_check([*peaks, _peak_at(kev, sig)], 0.01, 0.0, 40.0, np.full(4, 3.0), fitted)

    assert judged(o_ka, 5000.0)["passed"]
    assert judged(fe_la, 5000.0)["passed"]
    # Ge K-alpha in Fe K-alpha's place: Ge's L lines are above 1 keV
    no_fe = [_peak_at(_xraydb_line("Ge", ("Ka1", "Ka2")), 20000.0), *lines[1:]]
    assert not judged(fe_la, 5000.0, no_fe)["passed"]
    # 0.45 keV: no K-alpha of N, O, F, Ne within 50 eV (xraydb); Ti L-alpha's K-alpha is
    # no peak. Judged only above every fitted peak but one (Pb L-alpha, 3000 sigma)
    light = [_xraydb_line(el, ("Ka1", "Ka2")) for el in ("N", "O", "F", "Ne")]
    assert min(abs(e - 0.45) for e in light) > 0.05
    res = judged(0.45, 5000.0)
    assert not res["passed"] and "5000 sigma at 0.45 keV" in res["message"], res
    assert judged(0.45, 2500.0)["passed"]
    # nor does the zero window (below 0.35 keV) or the reference lines' range count
    assert judged(0.2, 5000.0)["passed"] and judged(0.95, 5000.0)["passed"]


def test_an_axis_that_moves_the_zero_peak_to_a_soft_energy_is_not_good():
    # dev 1010281, a Cr tube at 35 kV over Si and Zr: Si K-alpha read as Zr L-alpha and Zr
    # K-alpha as Rb K-alpha (xraydb), 3.2 keV off at 20 keV. The zero peak, the second
    # strongest peak, lands at 0.65 keV where no check looked: that axis passed them all
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1010281)
    assert set(case.elements) == {"Si", "Zr"} and case.zero_peak == "on"
    si_ka, zr_la, zr_ka, rb_ka = (_xraydb_line(el, n) for el, n in [
        ("Si", ("Ka1", "Ka2")), ("Zr", ("La1", "La2")), ("Zr", ("Ka1", "Ka2")), ("Rb", ("Ka1", "Ka2"))])
    wrong = _refine_reading(case, (si_ka, zr_la), (zr_ka, rb_ka))
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 1000.0
    zero_at = wrong.offset_keV - wrong.gain_keV * case.offset_keV / case.gain_keV
    assert 0.35 < zero_at < 0.9
    assert wrong.quality != "good"
    assert "soft peaks" in _failed(wrong.checks), wrong.checks
    right = _refine_quiet(case, case.gain_keV, case.offset_keV)
    assert case.max_error_eV(right.gain_keV, right.offset_keV) < 10.0
    assert "soft peaks" not in _failed(right.checks)


def test_a_peak_as_wide_as_a_k_alpha_doublet_is_a_line_to_explain():
    # a K-alpha doublet is wider than the detector's line: Sn K-alpha1 and 2 lie 0.23 keV
    # apart at 25 keV (xraydb). A peak that wide is a line and must be explained; only a
    # broader one may be scatter or continuum
    from maxrf.calibration.match import _fwhm_at
    from maxrf.calibration.references import _reference_lines
    from maxrf.calibration.unexplained import _line_fwhm_limit

    split = _xraydb_line("Sn", ("Ka1",)) - _xraydb_line("Sn", ("Ka2",))
    assert 0.2 < split < 0.25
    sn_ka = _xraydb_line("Sn", ("Ka1", "Ka2"))
    detector = float(_fwhm_at(sn_ka, 0.2))
    assert _line_fwhm_limit(sn_ka) == pytest.approx(1.6 * math.hypot(detector, split), rel=0.02)
    assert _line_fwhm_limit(6.4) == pytest.approx(1.6 * float(_fwhm_at(6.4, 0.2)), rel=0.01)
    refs = _reference_lines("W", 50.0)
    lines = [_peak_at(e, s) for e, s in [(_xraydb_line("Fe", ("Ka1", "Ka2")), 3000.0),
                                         (_xraydb_line("Pb", ("La1", "La2")), 2000.0)]]
    fitted = [p.channel for p in lines]
    # 27.9 keV (where dev 1010054's wrong axis put Sn K-alpha): no main line of Z 11-92
    # within 0.2 keV (xraydb's K-alpha of Te is 0.4 keV below, Sn K-beta 0.6 keV above)
    assert min(abs(_xraydb_line(el, ("Ka1", "Ka2")) - 27.9) for el in ("Sb", "Te", "I")) > 0.4
    for width_keV, judged in [(1.6 * detector + 0.1, True), (_line_fwhm_limit(27.9) + 0.1, False)]:
        peak = _peak_at(27.9, 300.0)
        peak.fwhm = width_keV / 0.01
        res = unexplained_check([*lines, peak], 0.01, 0.0, refs, None, 50.0, sigma_eV=3.0, fitted=fitted)
        assert ("27.90" in res["message"]) == judged, (width_keV, res)


def test_an_axis_that_widens_a_heavy_k_alpha_past_a_detector_line_is_not_good():
    # dev 1010054, a W tube at 50 kV behind 25 um Ti over Sn, Pb, Ca, Ni, Ag: Ag L-alpha
    # read as S K-alpha and Pb L-beta1 as Rb K-alpha (xraydb), 1.9 keV off. Sn K-alpha,
    # widened by the 15 % too steep axis past 1.6 detector FWHM, counted as scatter, and
    # the axis passed every check
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1010054)
    assert {"Sn", "Pb", "Ag"} <= set(case.elements)
    ag_la, s_ka, pb_lb, rb_ka = (_xraydb_line(el, n) for el, n in [
        ("Ag", ("La1", "La2")), ("S", ("Ka1", "Ka2")), ("Pb", ("Lb1",)), ("Rb", ("Ka1", "Ka2"))])
    wrong = _refine_reading(case, (ag_la, s_ka), (pb_lb, rb_ka))
    assert case.max_error_eV(wrong.gain_keV, wrong.offset_keV) > 1000.0
    assert wrong.quality != "good"
    assert "unexplained peaks" in _failed(wrong.checks), wrong.checks
    right = _refine_quiet(case, case.gain_keV, case.offset_keV)
    assert case.max_error_eV(right.gain_keV, right.offset_keV) < 10.0
    assert "unexplained peaks" not in _failed(right.checks)


@pytest.mark.parametrize("kb_share", [0.0, 0.25, 1.0])
def test_a_main_line_on_a_blend_flank_is_refuted_by_its_missing_companion(kb_share):
    # held-out 1170048 (looked at after its run): a W L-alpha Rayleigh line read as Zn
    # K-alpha on the flank of its Compton blend, 8 sigma there, while Zn K-beta fell on an
    # empty continuum behind a Cu filter. Built by hand here: a broad blend, Zn K-alpha on
    # its upper flank and Zn K-beta at xraydb's ratio times ``kb_share`` on a one-count
    # background. Absent, it is missing (the K-alpha's significance times the ratio is far
    # under what the old rule asked); at a quarter (matrix absorption, Zn in brass) or in
    # full it is there
    from maxrf.calibration.auto import _setup
    from maxrf.calibration.companions import COMPANION_DUE_SIGMA, silent_companions

    gain, n = 0.01, 2048
    e = gain * np.arange(n)
    lines = xraydb.xray_lines("Zn")
    ka = sum(lines[s].intensity for s in ("Ka1", "Ka2"))
    kb = sum(lines[s].intensity for s in ("Kb1", "Kb3"))
    e_ka, e_kb = _xraydb_line("Zn", ("Ka1", "Ka2")), _xraydb_line("Zn", ("Kb1", "Kb3"))

    def gauss(at, fwhm, height):
        return height * np.exp(-4.0 * math.log(2.0) * ((e - at) / fwhm) ** 2)

    w_ka, w_kb = physics.fwhm_keV(e_ka, 0.15), physics.fwhm_keV(e_kb, 0.15)
    zero = gauss(0.0, 0.09, 3000.0)
    blend = gauss(8.25, 0.25, 4000.0)
    # equal areas per count of intensity: the height scales as 1/FWHM
    kb_height = 600.0 * kb / ka * w_ka / w_kb * kb_share
    mean = 1.0 + zero + blend + gauss(e_ka, w_ka, 600.0) + gauss(e_kb, w_kb, kb_height)
    counts = np.random.default_rng(7).poisson(mean).astype(float)
    refs, _anode, spec, obs = _setup(counts, None, "Rh", 40.0)
    zn_ka = next(r for r in refs if r.name == "Zn Ka")
    peak = min(obs, key=lambda q: abs(q.channel - e_ka / gain))
    assert abs(peak.channel * gain - e_ka) < 0.02
    assert peak.significance * kb / ka < COMPANION_DUE_SIGMA  # the significance rule misses it
    missing = silent_companions(spec, gain, 0.0, refs, [(zn_ka, peak.channel, peak.err, False)], obs)
    assert any(name == "Zn Kb" for name, _due in missing) == (kb_share == 0.0), missing


def test_a_trace_line_on_a_peak_whose_companion_is_missing_is_not_offered_to_a_blend():
    # held-out 1170048's wrong axis (580 eV off, the W L-alpha blend's Compton maximum read
    # as its Rayleigh line) with no element found: a trace element's line offered to the
    # blend's fit takes the real Rayleigh line and the anode-scatter check passes. Zn
    # K-alpha sits on that peak and Zn K-beta, due from its height, shows nothing: Zn is
    # not a trace there. On the true axis no element is refuted so. Truth: the case
    from maxrf.calibration.auto import _setup
    from maxrf.calibration.companions import silent_elements
    from maxrf.calibration.references import trace_groups
    from maxrf.calibration.scatter_check import scatter_check
    from maxrf.synth_spectra import calibration_case

    case = calibration_case(1170048)
    g, o = 0.015509091498336954, -0.8713530991791438
    assert case.max_error_eV(g, o) > 500.0 and "Zn" not in case.elements
    refs, _anode, spec, obs = _setup(case.counts, None, case.anode, case.tube_kv)
    silent = silent_elements(spec, g, o, refs, set(), obs)
    assert "Zn" in silent
    assert not silent_elements(spec, case.gain_keV, case.offset_keV, refs, set(), obs)
    offered = scatter_check(spec, g, o, refs, 0.145, [], traces=trace_groups(refs, set()))
    assert offered["passed"]  # the blind spot: a trace takes the real Rayleigh line
    spec.fits.clear()
    kept = scatter_check(spec, g, o, refs, 0.145, [], traces=trace_groups(refs, silent))
    assert not kept["passed"], kept["message"]


def test_the_escape_of_a_line_inside_a_blend_is_not_a_zero_peak():
    from maxrf.calibration.explain import escape_of_stronger
    from maxrf.calibration.observe import _observe, _prepare
    from maxrf.calibration.verdict import zero_checks
    from maxrf.synth_spectra import calibration_case

    # held-out 1290009 (looked at after its run): a W tube over Zr and Ca, no zero peak.
    # Zr L-alpha's Si escape (xraydb: L-alpha1 less Si K-alpha) is a narrow bump near 0.3
    # keV; its parent peak is Zr L-alpha blended with Ca K-alpha's own escape, its maximum
    # tens of eV below Zr L-alpha, so the parent's escape falls beside the bump, and the
    # true axis failed for "a zero peak off 0 keV". Truth: the case's axis and elements
    case = calibration_case(1290009)
    assert {"Zr", "Ca"} <= set(case.elements) and case.zero_peak == "off"
    g, o = case.gain_keV, case.offset_keV
    escape = (xraydb.xray_lines("Zr")["La1"].energy - xraydb.xray_lines("Si")["Ka1"].energy) / 1e3
    obs = _observe(_prepare(case.counts, "sum"))
    e = [o + g * q.channel for q in obs]
    k = min(range(len(obs)), key=lambda i: abs(e[i] - escape))
    assert abs(e[k] - escape) < 0.015 and obs[k].significance >= 30
    assert not escape_of_stronger(obs, k, g, o)  # one line's reach misses it
    assert escape_of_stronger(obs, k, g, o, blends=True)
    zero = next(c for c in zero_checks(obs, g, o, case.counts.size) if c["name"] == "zero peak")
    assert zero["passed"], zero
    quality, checks = assess_calibration(case.counts, g, o, anode=case.anode, tube_kv=case.tube_kv)
    assert quality != "failed", [c for c in checks if not c["passed"]]
