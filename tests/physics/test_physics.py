"""physics: line tables, scattering and detector response, against xraydb and formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xraydb

from maxrf import physics
from maxrf.errors import ParameterError

M_E_C2_KEV = 510.99895  # CODATA 2018, typed here on purpose (independent of the module)


def _by_name(element, **kw):
    return {ln.siegbahn: ln for ln in physics.element_lines(element, **kw)}


# --------------------------------------------------------------------------- lines
@pytest.mark.parametrize("element", ["Fe", "Ca", "Cu", "Pb", "Hg", "Ti"])
def test_line_energies_are_xraydb(element):
    ref = xraydb.xray_lines(element)
    lines = physics.element_lines(element)
    assert lines, element
    for ln in lines:
        assert ln.element == element
        assert ln.energy_keV == pytest.approx(ref[ln.siegbahn].energy / 1000.0, abs=1e-9)
        xl = ref[ln.siegbahn]
        assert ln.iupac == f"{xl.initial_level}-{xl.final_level}"
        assert ln.family == xl.initial_level[0]
    energies = [ln.energy_keV for ln in lines]
    assert energies == sorted(energies)
    assert max(ln.rel_intensity for ln in lines) == pytest.approx(1.0)


def test_fe_ka1_and_k_ratios():
    lines = _by_name("Fe")
    ref = xraydb.xray_lines("Fe")
    assert lines["Ka1"].energy_keV == ref["Ka1"].energy / 1000
    assert lines["Ka1"].rel_intensity == 1.0
    assert lines["Ka1"].iupac == "K-L3"
    # same initial level: ratio = ratio of xraydb transition probabilities
    assert lines["Ka2"].rel_intensity == pytest.approx(ref["Ka2"].intensity / ref["Ka1"].intensity)
    ka = sum(ln.rel_intensity for n, ln in lines.items() if n.startswith("Ka"))
    kb = sum(ln.rel_intensity for n, ln in lines.items() if n.startswith("Kb"))
    assert 0.12 <= kb / ka <= 0.15
    assert all(ln.family == "K" for ln in lines.values())  # Fe L (0.7 keV) below min_keV


def test_pb_l_lines_at_40kv_k_lines_only_above_k_edge():
    lines = _by_name("Pb", tube_kv=40.0)
    assert {"La1", "La2", "Lb1", "Lg1", "Ma"} <= set(lines)
    assert not any(ln.family == "K" for ln in lines.values())
    assert max(lines.values(), key=lambda ln: ln.rel_intensity).siegbahn == "La1"
    k_edge = xraydb.xray_edge("Pb", "K").energy / 1000
    assert not any(ln.family == "K" for ln in physics.element_lines("Pb", k_edge - 0.5))
    high = _by_name("Pb", tube_kv=120.0)
    assert "Ka1" in high and "La1" in high
    # ratio within L3 follows xraydb
    ref = xraydb.xray_lines("Pb")
    assert lines["La2"].rel_intensity / lines["La1"].rel_intensity == pytest.approx(
        ref["La2"].intensity / ref["La1"].intensity
    )


def test_shell_weights_follow_yield_and_jump():
    # Fe K vs L3 with every level excited equally: rel(L3-M5)/rel(Ka1) =
    # [n_L3 w_L3 p(La1)] / [(1-1/J_K) w_K p(Ka1)], n_L3 with Coster-Kronig from xraydb
    e = xraydb.xray_edges("Fe")
    ck13 = xraydb.ck_probability("Fe", "L1", "L3")
    ck23 = xraydb.ck_probability("Fe", "L2", "L3")
    p = {s: 1 - 1 / e[s].jump_ratio for s in ("K", "L1", "L2", "L3")}
    p2 = p["L2"] + xraydb.ck_probability("Fe", "L1", "L2") * p["L1"]
    n3 = p["L3"] + ck23 * p["L2"] + ck13 * p["L1"]
    assert p2 > 0
    ref = xraydb.xray_lines("Fe")
    expected = (n3 * e["L3"].fyield * ref["La1"].intensity) / (
        p["K"] * e["K"].fyield * ref["Ka1"].intensity
    )
    lines = _by_name("Fe", tube_kv=None, min_keV=0.0, min_rel=0.0)
    assert lines["La1"].rel_intensity / lines["Ka1"].rel_intensity == pytest.approx(expected)


def test_overvoltage_weakens_k_lines_near_the_tube_voltage():
    def k_over_l(kv):
        lines = _by_name("Ba", tube_kv=kv)
        return lines["Ka1"].rel_intensity / lines["La1"].rel_intensity

    assert k_over_l(40.0) < k_over_l(60.0) < k_over_l(100.0)
    assert "Ka1" not in _by_name("Ba", tube_kv=37.0)  # Ba K edge 37.44 keV


def test_min_kev_and_min_rel():
    low = physics.element_lines("Fe", min_keV=0.5)
    assert any(ln.family == "L" for ln in low)
    for min_keV in (1.0, 6.5):
        assert all(ln.energy_keV >= min_keV for ln in physics.element_lines("Fe", min_keV=min_keV))
    assert len(physics.element_lines("Pb", min_rel=0.1)) < len(physics.element_lines("Pb"))
    assert all(ln.rel_intensity >= 0.1 for ln in physics.element_lines("Pb", min_rel=0.1))
    assert physics.element_lines("Li") == []


def test_element_names_and_errors():
    assert physics.element_lines("fe") == physics.element_lines(26) == physics.element_lines("FE")
    for bad in ("Xx", "", 0, 200, None):
        with pytest.raises(ParameterError):
            physics.element_lines(bad)
    with pytest.raises(ParameterError):
        physics.element_lines("Fe", tube_kv=-1)


def test_line_energy_groups():
    ref = xraydb.fluor_yield("Fe", "K", "Ka", 8000)[1] / 1000
    assert physics.line_energy("Fe", "Ka") == pytest.approx(ref, abs=1e-6)
    assert physics.line_energy("Fe") == pytest.approx(ref, abs=1e-6)
    assert physics.line_energy("Fe", "Ka1") == xraydb.xray_lines("Fe")["Ka1"].energy / 1000
    assert physics.line_energy("Pb", "La") == pytest.approx(10.54, abs=0.02)
    assert 12.5 < physics.line_energy("Pb", "Lb") < 12.8
    assert physics.line_energy("Pb", "Ma") == xraydb.xray_lines("Pb")["Ma"].energy / 1000
    assert physics.line_energy("Pb", "Lg") == pytest.approx(14.8, abs=0.3)
    assert physics.line_energy("Cu", "kb") == pytest.approx(8.905, abs=0.01)
    with pytest.raises(ParameterError):
        physics.line_energy("Fe", "Ma")
    with pytest.raises(ParameterError):
        physics.line_energy("Fe", "")


def test_anode_lines():
    rh = {ln.siegbahn: ln for ln in physics.anode_lines()}
    assert rh["Ka1"].energy_keV == pytest.approx(20.216, abs=1e-3)
    assert "La1" in rh
    for anode in physics.ANODES:
        lines = physics.anode_lines(anode, 40.0)
        assert lines and all(ln.element == anode for ln in lines)
    assert all(ln.family != "K" for ln in physics.anode_lines("W", 40.0))  # K edge 69.5 keV
    with pytest.raises(ParameterError):
        physics.anode_lines("Fe")


# --------------------------------------------------------------------------- Compton
def test_compton_shift_formula_and_rh_ka():
    e = np.linspace(1.0, 60.0, 25)[:, None]
    theta = np.linspace(0.0, 180.0, 19)[None, :]
    ref = e / (1 + e / M_E_C2_KEV * (1 - np.cos(np.radians(theta))))
    np.testing.assert_allclose(physics.compton_shift(e, theta), ref, rtol=1e-9)
    assert physics.compton_shift(20.0, 0.0) == pytest.approx(20.0)
    rh_ka = physics.line_energy("Rh", "Ka")
    assert rh_ka == pytest.approx(20.2, abs=0.05)
    assert physics.compton_shift(rh_ka, 90.0) == pytest.approx(19.4, abs=0.05)
    assert isinstance(physics.compton_shift(20.0, 90.0), float)


def test_detector_angle_inverts_compton_shift():
    e0 = np.array([5.0, 17.4, 20.2, 22.7, 59.3])[:, None]
    theta = np.linspace(1.0, 179.0, 40)[None, :]
    back = physics.detector_angle(physics.compton_shift(e0, theta), e0)
    np.testing.assert_allclose(back, np.broadcast_to(theta, back.shape), atol=1e-6)
    assert physics.detector_angle(physics.compton_shift(20.2, 95.0), 20.2) == pytest.approx(95.0)
    for bad in (20.5, 10.0, -1.0):  # above the incident energy, below the 180-degree limit
        with pytest.raises(ParameterError):
            physics.detector_angle(bad, 20.2)


# --------------------------------------------------------------------------- detector
@pytest.mark.parametrize("f6", [0.122, 0.130, 0.145, 0.160, 0.25])
def test_fwhm_model(f6):
    assert physics.fwhm_keV(5.9, f6) == pytest.approx(f6, rel=1e-12)
    e = np.linspace(0.0, 40.0, 81)
    w = physics.fwhm_keV(e, f6)
    assert w.shape == e.shape and np.all(np.diff(w) > 0)
    slope = 2.3548**2 * 0.114 * 3.85e-3  # keV, Fano statistics in Si
    np.testing.assert_allclose(w**2 - w[0] ** 2, slope * e, rtol=1e-3)
    assert physics.noise_fwhm_keV(f6) == pytest.approx(w[0])


def test_fwhm_below_fano_limit_is_refused():
    with pytest.raises(ParameterError, match="Fano"):
        physics.fwhm_keV(5.9, 0.10)
    with pytest.raises(ParameterError):
        physics.fwhm_keV(5.9, -0.1)


@pytest.mark.parametrize("energy", [0.0, 2.3, 5.9, 17.4])
@pytest.mark.parametrize("f6", [0.125, 0.145, 0.20])
def test_resolution_from_one_measured_width(energy, f6):
    # the Fano law by hand: FWHM^2 = noise^2 + slope E, slope from F = 0.114, 3.85 eV
    slope = 2.3548**2 * 0.114 * 3.85e-3
    noise2 = f6**2 - slope * 5.9
    width = math.sqrt(noise2 + slope * energy)
    assert physics.fwhm_at_6keV_from(width, energy) == pytest.approx(f6, rel=1e-3)


def test_resolution_from_a_width_below_the_fano_limit_is_none():
    slope = 2.3548**2 * 0.114 * 3.85e-3
    assert physics.fwhm_at_6keV_from(0.9 * math.sqrt(slope * 10.0), 10.0) is None
    assert physics.fwhm_at_6keV_from(float("nan"), 0.0) is None


def test_escape():
    si_ka = xraydb.fluor_yield("Si", "K", "Ka", 5000)[1] / 1000
    assert physics.escape_energy(6.4) == pytest.approx(6.4 - si_ka, abs=1e-9)
    assert physics.escape_energy(6.4) == pytest.approx(6.4 - 1.740, abs=0.002)
    np.testing.assert_allclose(
        physics.escape_energy(np.array([5.0, 10.0])), [3.26, 8.26], atol=2e-3
    )
    f = physics.escape_fraction(np.array([1.7, 1.83, 1.9, 3.0, 6.4, 10.0, 20.0]))
    assert f[0] == f[1] == 0.0  # below the Si K edge (1.839 keV)
    assert 0.005 < f[2] < 0.03
    assert np.all(np.diff(f[2:]) < 0)
    assert physics.escape_energy(20.0, "Ge") == pytest.approx(20.0 - 9.876, abs=0.01)
    with pytest.raises(ParameterError):
        physics.escape_energy(5.0, "Xe")


def test_element_color():
    common = ["Fe", "Pb", "Cu", "Ca", "Zn", "Hg", "K", "Mn", "Ti", "Co", "Cr", "As", "Sr", "Ba"]
    colours = [physics.element_color(el) for el in common]
    assert len(set(colours)) == len(colours)
    assert physics.element_color("fe") == physics.element_color(26) == colours[0]
    for z in range(1, 99):
        r, g, b = physics.element_color(z)
        assert all(0.0 <= v <= 1.0 for v in (r, g, b))
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.7  # never close to white


# --------------------------------------------------------------------------- spectra
def test_gaussian_peaks_area_centre_width():
    e = np.arange(0.0, 20.0, 0.01)
    spec = physics.gaussian_peaks(e, [5.0, 12.0], [100.0, 50.0], [0.15, 0.2])
    assert spec.shape == e.shape
    assert spec.sum() == pytest.approx(150.0, rel=1e-9)
    first = spec * (e < 8.5)
    assert first.sum() == pytest.approx(100.0, rel=1e-6)
    mean = (first * e).sum() / first.sum()
    sd = math.sqrt((first * (e - mean) ** 2).sum() / first.sum())
    assert mean == pytest.approx(5.0, abs=1e-6)
    assert sd == pytest.approx(math.sqrt((0.15 / 2.3548) ** 2 + 0.01**2 / 12), rel=1e-3)
    batch = physics.gaussian_peaks(e, [5.0, 12.0], np.array([[1.0, 0.0], [0.0, 2.0]]), 0.15)
    assert batch.shape == (2, e.size)
    np.testing.assert_allclose(batch.sum(axis=1), [1.0, 2.0])
    tall = physics.gaussian_peaks(e, [5.0], [7.0], 0.3, kind="height")
    assert tall.max() == pytest.approx(7.0, rel=0.01)


def test_peak_profiles_are_normal_integrals_over_uneven_channels():
    # the fits' kernel against scipy's normal distribution, integrated by quadrature over
    # each channel of an uneven axis (the edges halfway between centres)
    from scipy import integrate, stats

    e = np.cumsum(np.r_[1.0, np.linspace(0.008, 0.012, 199)])
    edges = physics.channel_edges(e)
    assert edges.shape == (e.size + 1,)
    np.testing.assert_allclose(edges[1:-1], 0.5 * (e[1:] + e[:-1]))
    centres, fwhm = np.array([1.5, 2.1]), np.array([0.12, 0.2])
    prof = physics.peak_profiles(edges, centres, fwhm)
    assert prof.shape == (e.size, 2)
    for j, (c, w) in enumerate(zip(centres, fwhm)):
        pdf = stats.norm(c, w / (2.0 * math.sqrt(2.0 * math.log(2.0)))).pdf
        want = [integrate.quad(pdf, lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(prof[:, j], want, atol=1e-10)
    np.testing.assert_allclose(physics.gaussian_peaks(e, centres, [3.0, 4.0], fwhm), prof @ [3.0, 4.0])


@pytest.mark.parametrize("f6", [0.13, 0.16])
def test_element_spectrum_unit_area_peaks_at_main_line(f6):
    e = -0.5 + 0.02 * np.arange(2100)
    fe = physics.element_spectrum("Fe", e, fwhm_at_6keV=f6)
    assert fe.sum() == pytest.approx(1.0, abs=1e-9)
    assert abs(e[np.argmax(fe)] - 6.40) <= 0.02
    # Si escape peak at Fe Ka - 1.74 keV (about 0.3 % of the Ka area)
    esc = (e > 4.55) & (e < 4.77)
    assert 0.001 < fe[esc].sum() < 0.006
    pb = physics.element_spectrum("Pb", e, fwhm_at_6keV=f6)
    assert pb.sum() == pytest.approx(1.0, abs=1e-9)
    assert abs(e[np.argmax(pb)] - physics.line_energy("Pb", "La")) <= 0.04
    no_esc = physics.element_spectrum("Fe", e, fwhm_at_6keV=f6, escape=False)
    assert no_esc[esc].sum() < 1e-4
    assert physics.element_spectrum("Li", e).sum() == 0.0


def test_scatter_spectrum_components():
    e = -0.3 + 0.02 * np.arange(2100)
    theta = 100.0
    sc = physics.scatter_spectrum(e, anode="Rh", tube_kv=40.0, theta_deg=theta, fwhm_at_6keV=0.14)
    assert set(sc) == {"rayleigh", "compton", "continuum"}
    for name, spec in sc.items():
        assert spec.shape == e.shape and np.all(spec >= 0)
        assert spec.sum() == pytest.approx(1.0, abs=1e-3), name
    rh_ka = physics.line_energy("Rh", "Ka")
    assert abs(e[np.argmax(sc["rayleigh"])] - rh_ka) <= 0.04
    window = e > 15
    peak = e[window][np.argmax(sc["compton"][window])]
    assert abs(peak - physics.compton_shift(rh_ka, theta)) <= 0.06

    # the Compton peak is broader than the Rayleigh peak
    def width_above_half(spec):
        ka = (e > 17.0) & (e < 21.0)
        return np.count_nonzero(spec[ka] > 0.5 * spec[ka].max())

    assert width_above_half(sc["compton"]) > 1.4 * width_above_half(sc["rayleigh"])
    cont = sc["continuum"]
    # the detector broadens the continuum's end at 40 kV like a line there (FWHM ~ 0.3 keV)
    fw40 = float(physics.fwhm_keV(40.0, 0.14))
    assert np.all(cont[e > 40.0 + 2.5 * fw40] < 1e-6 * cont.max()) and np.all(cont[(e > 3) & (e < 39)] > 0)
    assert cont[np.argmin(np.abs(e - (40.0 + 0.3 * fw40)))] > 0.0
    assert 8.0 < e[np.argmax(cont)] < 30.0


def test_filter_edge_in_the_continuum_is_broadened_like_a_line():
    # reference: brute-force per-channel integral of the filtered emitted continuum under a
    # Gaussian of the detector's width at each emitted energy (scipy's normal CDF)
    from scipy.stats import norm

    from maxrf.physics.spectra import _continuum_density
    from maxrf.synth_spectra import filter_transmission

    e = 6.0 + 0.01 * np.arange(600)  # around the Ni K edge (8.333 keV)
    filt = ("Ni", 25.0)
    sc = physics.scatter_spectrum(e, anode="Rh", tube_kv=40.0, fwhm_at_6keV=0.15,
                                  transmission=lambda x: filter_transmission(x, filt))
    g0, d0 = _continuum_density(40.0)
    src = np.arange(4.0, 14.0, 0.002)
    w = np.interp(src, g0, d0) * filter_transmission(src, filt) * 0.002
    sig = np.asarray(physics.fwhm_keV(src, 0.15)) / 2.3548
    lo, hi = e - 0.005, e + 0.005
    ref = (norm.cdf((hi[:, None] - src[None, :]) / sig) - norm.cdf((lo[:, None] - src[None, :]) / sig)) @ w
    np.testing.assert_allclose(sc["continuum"], ref, rtol=0, atol=0.01 * ref.max())
    # a step as wide as a line: half of the drop within one FWHM of the edge, not between
    # two channels
    k = np.argmin(np.abs(e - 8.333))
    c = sc["continuum"]
    assert c[k - 30] > 2.0 * c[k + 30]
    assert 0.2 < (c[k] - c[k + 30]) / (c[k - 30] - c[k + 30]) < 0.8


def test_zero_peak():
    e = -1.0 + 0.01 * np.arange(500)
    z = physics.zero_peak(e, 0.08)
    assert z.sum() == pytest.approx(1.0, abs=1e-9)
    assert abs(e[np.argmax(z)]) <= 0.01
    half = physics.zero_peak(np.arange(0.0, 5.0, 0.01) + 0.005, 0.08)
    assert half.sum() == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize(
    "anode, line, element",
    [("Cr", "Ka1", "Ti"), ("W", "La1", "Ni"), ("W", "Lb1", "Cu"), ("Cu", "Kb1", "Ni"), ("Rh", "Ka1", "Mo")],
)
def test_the_filter_edge_below_a_tube_line_is_xraydbs_and_absorbs_it(anode, line, element):
    # independent reference: xraydb's K edges and attenuation (25 um of the filter)
    keV = physics.line_energy(anode, line)
    el, edge = physics.filter_edge_below(keV)
    assert el == element
    assert edge == pytest.approx(xraydb.xray_edge(element, "K").energy / 1000.0)
    rho = xraydb.atomic_density(element)
    t_line = math.exp(-xraydb.material_mu(element, keV * 1000.0, density=rho) * 25e-4)
    t_below = math.exp(-xraydb.material_mu(element, (edge - 0.05) * 1000.0, density=rho) * 25e-4)
    assert t_line < 0.25 * t_below  # the edge's step lies between the line and the photons below it


def test_no_filter_edge_below_lines_far_above_every_k_edge_of_the_filters():
    for anode, line in (("Mo", "Ka1"), ("Ag", "Ka1"), ("W", "Lg1"), ("Rh", "La1")):
        keV = physics.line_energy(anode, line)
        found = physics.filter_edge_below(keV)
        edges = [xraydb.xray_edge(el, "K").energy / 1000.0 for el in physics.PRIMARY_FILTER_ELEMENTS]
        assert found is None and not any(keV - 1.0 <= e < keV for e in edges)
    # the reach is a parameter: Zr's edge (18.00 keV) lies 1.6 keV below Mo K-beta
    assert physics.filter_edge_below(physics.line_energy("Mo", "Kb1"), reach_keV=2.0)[0] == "Zr"
