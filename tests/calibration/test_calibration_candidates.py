"""Candidate generation and choice of the automatic calibration: the peak widths the
candidates are judged by, and the companions a scattered tube line may lack.

Truth: xraydb line and edge energies, the Fano limit of silicon, and the known axis of
synthetic cases (:func:`maxrf.synth_spectra.calibration_case`; development seeds
70000-70999).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xraydb

from maxrf import physics
from maxrf.calibration.explain import refute_missing_companions
from maxrf.calibration.match import _assign
from maxrf.calibration.observe import _observe, _prepare
from maxrf.calibration.references import _anode_main, _reference_lines
from maxrf.synth_spectra import calibration_case


def _xraydb_line(element: str, name: str) -> float:
    """Energy (keV) of one line straight from xraydb."""
    return float(xraydb.xray_lines(element)[name].energy) / 1e3


@pytest.mark.parametrize("seed", [70306, 70315, 70380])
def test_scattered_tube_lines_are_not_narrower_than_the_fano_limit(seed):
    # Mo and Ag blanks whose typical width is the zero peak's (45-60 eV): the fit windows
    # sized from it held only the top of the anode's K lines, fitted 31-110 eV wide where
    # silicon's Fano limit alone makes 170-200 eV
    case = calibration_case(seed)
    assert case.anode in ("Mo", "Ag")
    obs = _observe(_prepare(case.counts, "sum"))
    e_obs = case.offset_keV + case.gain_keV * np.array([o.channel for o in obs])
    checked = 0
    for name in ("Ka1", "Kb1"):
        line = _xraydb_line(case.anode, name)
        k = int(np.argmin(np.abs(e_obs - line)))
        if abs(e_obs[k] - line) > 0.1:
            continue
        fano = math.sqrt(physics.FANO_SLOPE * line)
        assert obs[k].fwhm * case.gain_keV >= 0.9 * fano, f"{case.anode} {name}"
        checked += 1
    assert checked >= 1


def test_scattered_anode_line_stands_when_a_primary_filter_absorbs_its_companion():
    # W tube through 50 um Cu: the Cu K edge lies between W L-alpha and L-beta, so the
    # scattered L-beta is absorbed; a missing companion then says nothing about L-alpha
    case = calibration_case(70057)
    assert case.anode == "W" and case.filter == ("Cu", 50.0)
    edge = float(xraydb.xray_edge("Cu", "K").energy) / 1e3
    assert _xraydb_line("W", "La1") < edge < _xraydb_line("W", "Lb1")
    spec = _prepare(case.counts, "sum")
    obs = _observe(spec)
    refs = _reference_lines("W", case.tube_kv)
    n = case.counts.size
    pairs = _assign(case.gain_keV, case.offset_keV, obs, refs, 0.3, n)
    la = [p for p in pairs if refs[p[1]] is _anode_main(refs)]
    assert la, "the true axis matches no peak to W L-alpha"
    refuted = refute_missing_companions(pairs, obs, refs, case.gain_keV, case.offset_keV, n)
    assert la[0] not in refuted
