"""The Rayleigh line inside a Compton blend next to a primary filter's edge
(maxrf.calibration.scatter_fit)."""

from __future__ import annotations

import numpy as np
import pytest
import xraydb

from maxrf import physics
from maxrf.calibration.auto import _setup
from maxrf.calibration.references import _rayleigh_keV
from maxrf.calibration.scatter_fit import MISFIT_CHI2, fit_rayleigh
from maxrf.calibration.verdict import assess_calibration
from maxrf.synth_spectra import calibration_case


@pytest.mark.parametrize("seed", [1240073, 1260206])
def test_a_blend_just_above_a_filters_edge_is_fitted_with_its_step(seed):
    # held-out 1240073 and 1260206 (looked at after their runs): Cr blanks behind 25 um
    # of Ti, whose K edge lies 75 eV below the Cr K-alpha blend's window (from its
    # Compton peak at 180 degrees, less two FWHM): the filter's transmission rises
    # fivefold across the window and the detector spreads the edge's step into it. With a
    # straight background the blend misfit and its Rayleigh line could not be measured,
    # which left both true axes doubtful and a wrong one chosen. Truth: the case's axis
    # and angle, xraydb's attenuation
    case = calibration_case(seed)
    assert case.anode == "Cr" and case.filter == ("Ti", 25.0)
    cr_ka = xraydb.xray_lines("Cr")["Ka1"].energy / 1e3
    fw = float(physics.fwhm_keV(cr_ka, case.fwhm_at_6keV))
    start = float(physics.compton_shift(cr_ka, 180.0)) - 2.0 * fw
    edge = xraydb.xray_edge("Ti", "K").energy / 1e3
    assert 0.0 < start - edge < fw
    mu = xraydb.mu_elam("Ti", [start * 1e3, (cr_ka + 1.5 * fw) * 1e3])
    transmission = np.exp(-mu * xraydb.atomic_density("Ti") * 25e-4)
    assert transmission[1] > 3.0 * transmission[0]
    refs, _anode_ref, spec, _obs = _setup(case.counts, None, case.anode, case.tube_kv)
    blend = next(r for r in refs if r.name == "Cr Ka scatter")
    others = [xraydb.xray_lines(el)["Ka1"].energy / 1e3 for el in case.elements]
    fit = fit_rayleigh(spec, case.gain_keV, case.offset_keV, blend, case.fwhm_at_6keV, others, edges=True)
    assert fit is not None and fit.chi2 < MISFIT_CHI2, fit
    off_eV = (case.offset_keV + case.gain_keV * fit.channel - _rayleigh_keV(blend)) * 1e3
    err_eV = fit.err * case.gain_keV * 1e3
    assert abs(off_eV) < max(20.0, 3.0 * err_eV) and err_eV < 25.0, (off_eV, err_eV)
    assert abs(fit.theta_deg - case.theta_deg) < 20.0
    # and the check that judges the axis measures it there
    _quality, checks = assess_calibration(case.counts, case.gain_keV, case.offset_keV, anode="Cr",
                                          tube_kv=case.tube_kv)
    scatter = next(c for c in checks if c["name"] == "anode scatter")
    assert "cannot be measured" not in scatter["message"], scatter["message"]
