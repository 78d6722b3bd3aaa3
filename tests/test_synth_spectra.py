"""maxrf.synth_spectra: hard synthetic point spectra for calibration, checked against
xraydb and the draws they claim."""

from __future__ import annotations

import numpy as np
import pytest
import xraydb

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.synth_spectra import CASE_ANODES, calibration_case, filter_transmission


def test_cases_are_reproducible_and_span_the_ranges():
    a, b = calibration_case(7), calibration_case(7)
    np.testing.assert_array_equal(a.counts, b.counts)
    cases = [calibration_case(s) for s in range(24)]
    assert {c.anode for c in cases} == set(CASE_ANODES)
    assert {c.kind for c in cases} == {"blank", "lines"}
    assert {c.zero_peak for c in cases} == {"on", "cut", "off"}
    for c in cases:
        assert 0.005 <= c.gain_keV <= 0.020 and -1.2 <= c.offset_keV <= 0.3
        assert c.counts.size in (1024, 2048, 4096)
        assert np.all(c.counts >= 0) and np.all(c.counts == np.round(c.counts))
        assert c.energies()[0] == pytest.approx(c.offset_keV)
        if c.kind == "blank":
            assert all(v < 0.05 for v in c.elements.values())  # traces only


def test_forced_parameters_and_errors():
    c = calibration_case(3, anode="W", kind="blank", gain_keV=0.01, offset_keV=-0.5)
    assert (c.anode, c.kind, c.gain_keV, c.offset_keV) == ("W", "blank", 0.01, -0.5)
    # W L-alpha1 Rayleigh/Compton scatter is the strongest feature near 8.4 keV
    e = c.energies()
    band = (e > 7.5) & (e < 8.6)
    assert e[band][np.argmax(c.counts[band])] == pytest.approx(8.3, abs=0.3)
    with pytest.raises(ParameterError):
        calibration_case(1, anode="Fe")
    with pytest.raises(ParameterError):
        calibration_case(1, kind="paper")


def test_filter_transmission_matches_beer_lambert_from_xraydb():
    e = np.array([2.0, 5.0, 10.0, 20.0])
    t = filter_transmission(e, ("Al", 100.0))
    mu = xraydb.material_mu("Al", e * 1e3, density=2.699)  # 1/cm
    np.testing.assert_allclose(-np.log(t), mu * 100e-4, rtol=0.01)
    assert np.all(filter_transmission(e, None) == 1.0)


def test_max_error_is_over_2_to_20_keV():
    c = calibration_case(11)
    assert c.max_error_eV(c.gain_keV, c.offset_keV) == 0.0
    assert c.max_error_eV(c.gain_keV, c.offset_keV + 0.005) == pytest.approx(5.0)
    top = min(20.0, c.energies()[-1])
    assert c.max_error_eV(c.gain_keV * 1.001, c.offset_keV) == pytest.approx(
        1e3 * 0.001 * (top - c.offset_keV), rel=0.02)


def _ka_keV(element: str) -> float:
    """Intensity-weighted K-alpha1,2 energy (keV) from xraydb."""
    lines = xraydb.xray_lines(element, "K")
    ka = [lines[k] for k in ("Ka1", "Ka2")]
    return sum(ln.energy * ln.intensity for ln in ka) / sum(ln.intensity for ln in ka) / 1e3


@pytest.mark.parametrize(
    ("filt", "element"),
    [(("Ni", 25.0), "Zn"), (("Cu", 50.0), "Cr"), (("Ti", 25.0), "Fe"), (("Cu", 50.0), "Zn")],
)
def test_a_primary_filter_scales_lines_without_shifting_them(filt, element):
    # the filter acts on photons before the detector broadens them: a line behind it keeps
    # its place (a tilt of the broadened peak would move its centroid by sigma^2 dlnT/dE,
    # 4-14 eV for these filters). A scattered tube line is scaled by the filter's
    # transmission at its energy; an element's lines by the share of their shell's
    # excitation the filter passes: Kramers (E0 - E)/E x photo-absorption E**-2.7 from the
    # K edge (xraydb) up, integrated by scipy with and without the filter. K-alpha and
    # K-beta keep their ratio even when the filter's edge lies between them (Cu: Zn)
    from scipy.integrate import quad

    from maxrf.synth_spectra import _filtered

    e = np.arange(2.0, 12.0, 0.002)
    kv = 40.0
    kw = {"anode": "Cr", "tube_kv": kv, "theta_deg": 120.0, "fwhm_at_6keV": 0.14, "poisson": False}
    edge = xraydb.xray_edge(element, "K").energy / 1e3

    def excite(x: float, t: bool) -> float:
        f = filter_transmission(np.array([x]), filt)[0] if t else 1.0
        return (kv - x) / x * x**-physics.PHOTO_EXPONENT * f

    passed, total = (quad(excite, edge, kv, args=(t,), limit=200)[0] for t in (True, False))
    share = passed / total
    kb = xraydb.xray_lines(element, "K")["Kb1"].energy / 1e3
    cases = (({element: 1.0}, {}, _ka_keV(element), share), ({}, {"rayleigh": 1.0}, _ka_keV("Cr"), None))
    for amps, scatter, line, expected in cases:
        lam = _filtered(amps, scatter, e, filt, kw)
        win = np.abs(e - line) < 0.08  # +-1.3 sigma: the K-beta line is far
        centroid = float(np.sum(lam[win] * e[win]) / np.sum(lam[win]))
        assert centroid == pytest.approx(line, abs=0.0006)
        open_lam = _filtered(amps, scatter, e, None, kw)
        t = filter_transmission(np.array([line]), filt)[0] if expected is None else expected
        assert np.sum(lam[win]) / np.sum(open_lam[win]) == pytest.approx(t, rel=0.03)
        if expected is not None:
            beta = np.abs(e - kb) < 0.05
            assert np.sum(lam[beta]) / np.sum(open_lam[beta]) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("seed", [5, 18])
def test_expected_components_are_the_mean_of_the_draw(seed):
    # the Poisson draw scatters about its mean with variance = mean: over the channels
    # with counts, sum((k - lam)^2 / lam) / n is 1 within a few sqrt(2/n)
    c = calibration_case(seed)
    lam = c.expected_components().sum(axis=0)
    m = lam > 5.0
    assert m.sum() > 300
    chi2 = float(np.sum((c.counts[m] - lam[m]) ** 2 / lam[m]) / m.sum())
    assert abs(chi2 - 1.0) < 5.0 * np.sqrt(2.0 / m.sum())
    assert lam.sum() == pytest.approx(c.counts.sum(), rel=5.0 / np.sqrt(c.counts.sum()))


def test_axis_bound_is_the_curvature_of_the_poisson_likelihood():
    # independent reference: the expected Poisson log-likelihood's second differences in
    # (gain, offset) at the truth equal the Fisher information the bound inverts
    # (the continuum, whose information the bound leaves out, kept where it is)
    c = calibration_case(11)
    comps = c.expected_components()
    lam0 = comps.sum(axis=0)
    cont = comps[c.component_names.index("continuum")]
    g, o = c.gain_keV, c.offset_keV
    h = np.array([2e-7, 4e-4])

    def nll(dg: float, do: float) -> float:
        moved = c.expected_components(g + dg, o + do)
        moved[c.component_names.index("continuum")] = cont
        lam = np.maximum(moved.sum(axis=0), 1e-12)
        return float(np.sum(lam - lam0 * np.log(lam)))

    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h[i], np.eye(2)[j] * h[j]
            second = nll(*(ei + ej)) - nll(*(ei - ej)) - nll(*(ej - ei)) + nll(*(-ei - ej))
            hess[i, j] = second / (4 * h[i] * h[j])
    cov = np.linalg.inv(hess)
    ch = (np.array([2.0, 20.0]) - o) / g
    sd = [np.sqrt(cov[1, 1] + x * x * cov[0, 0] + 2 * x * cov[0, 1]) * 1e3 for x in ch]
    known = c.axis_bound(nuisance=False)
    assert known["sd_lo_eV"] == pytest.approx(sd[0], rel=0.05)
    assert known["sd_hi_eV"] == pytest.approx(sd[1], rel=0.05)
    free = c.axis_bound()  # more unknowns never make the bound tighter
    assert free["sd_lo_eV"] >= known["sd_lo_eV"] * 0.999 and free["sd_hi_eV"] >= known["sd_hi_eV"] * 0.999
    assert 0.0 <= free["p_within"] <= known["p_within"] <= 1.0
    # four times the counts halve the bound
    c.scale *= 4.0
    more = c.axis_bound(nuisance=False)
    assert more["sd_hi_eV"] == pytest.approx(0.5 * known["sd_hi_eV"], rel=0.01)


def _peaks_moved(c, **kw) -> np.ndarray:
    """Expected counts of a case's peaks (all but the continuum) with one parameter moved."""
    peaks = np.array([n != "continuum" for n in c.component_names])
    return c.expected_components(**kw)[peaks].sum(axis=0)


def _projected_sd(c, nuisance_cols: list[np.ndarray]) -> tuple[float, float]:
    """The axis bound's standard deviations (eV at 2 and 20 keV) computed another way:
    the weighted gain and offset derivatives projected off the span of the nuisance
    derivatives by least squares (no Fisher matrix is inverted)."""
    lam = c.expected_components().sum(axis=0)
    g, o = c.gain_keV, c.offset_keV
    d_gain = (_peaks_moved(c, gain_keV=g + 1e-6) - _peaks_moved(c, gain_keV=g - 1e-6)) / 2e-6
    d_offset = (_peaks_moved(c, offset_keV=o + 1e-4) - _peaks_moved(c, offset_keV=o - 1e-4)) / 2e-4
    axis = np.column_stack([d_gain, d_offset])
    w = 1.0 / np.sqrt(np.maximum(lam, 1e-9))
    a = axis * w[:, None]
    n = np.column_stack([col * w for col in nuisance_cols if np.any(col != 0)])
    n = n / np.linalg.norm(n, axis=0)
    resid = a - n @ np.linalg.lstsq(n, a, rcond=None)[0]
    cov = np.linalg.inv(resid.T @ resid)
    ch = (np.array([2.0, 20.0]) - o) / g
    return tuple(float(np.sqrt(cov[1, 1] + x * x * cov[0, 0] + 2 * x * cov[0, 1])) * 1e3 for x in ch)


@pytest.mark.parametrize("seed", [500520, 400297])
def test_robust_axis_bound_against_a_projection(seed):
    # 500520: an Rh blank behind Ti, no zero peak; 400297: a Cr blank with its zero peak
    c = calibration_case(seed)
    comps = c.expected_components()
    names = c.component_names
    t, w = c.theta_deg, c.fwhm_at_6keV
    shared = [(_peaks_moved(c, theta_deg=t + 0.5) - _peaks_moved(c, theta_deg=t - 0.5)) / 1.0,
              (_peaks_moved(c, fwhm_at_6keV=w + 0.002) - _peaks_moved(c, fwhm_at_6keV=w - 0.002)) / 0.004]
    plain = [*comps, *shared]
    robust = [row for row, n in zip(comps, names) if n not in ("rayleigh", "compton")]
    robust += shared + c._robust_columns(0.002)
    for kw, cols in (({}, plain), ({"robust": True}, robust)):
        b = c.axis_bound(**kw)
        lo, hi = _projected_sd(c, cols)
        assert b["sd_lo_eV"] == pytest.approx(lo, rel=0.02) and b["sd_hi_eV"] == pytest.approx(hi, rel=0.02)


def test_robust_axis_bound_knows_less():
    # a tube's K lines with no zero peak: the bound leaned on the Compton peaks' exact
    # place; robust, it loses that and the axis at 2 keV is known far worse
    blank = calibration_case(500520)
    assert blank.kind == "blank" and blank.anode == "Rh" and blank.zero_counts == 0.0
    plain, robust = blank.axis_bound(), blank.axis_bound(robust=True)
    assert robust["sd_lo_eV"] > 1.5 * plain["sd_lo_eV"] and robust["p_within"] < plain["p_within"]
    # a Mo tube with Ca and Cu K lines: those lines pin the axis, robust or not
    rich = calibration_case(400000)
    assert rich.kind == "lines" and set(rich.elements) == {"Ca", "Cu"}
    plain, robust = rich.axis_bound(), rich.axis_bound(robust=True)
    assert robust["sd_hi_eV"] == pytest.approx(plain["sd_hi_eV"], rel=0.05)
    # never tighter than the plain bound
    for seed in (400015, 400059, 400121, 400297):
        c = calibration_case(seed)
        plain, robust = c.axis_bound(), c.axis_bound(robust=True)
        assert robust["sd_lo_eV"] >= 0.999 * plain["sd_lo_eV"]
        assert robust["sd_hi_eV"] >= 0.999 * plain["sd_hi_eV"]
