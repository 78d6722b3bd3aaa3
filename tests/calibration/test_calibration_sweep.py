"""A modest synthetic sweep: whatever the automatic calibration gets wrong, it never calls
a result more than 30 eV off "good" (seeds 5000-5023; development used 0-199, the
benchmark measures 10000+), and refining from the true axis moves no further than the
sweep's automatic search erred."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from maxrf.calibration import auto_calibrate, refine_calibration
from maxrf.errors import CalibrationError
from maxrf.synth_spectra import calibration_case

SEEDS = range(5000, 5024)


@pytest.fixture(scope="module")
def results():
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in SEEDS:
            case = calibration_case(seed)
            try:
                cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
            except CalibrationError:
                out.append((case, None, np.inf))  # an explicit error is honest
                continue
            out.append((case, cal, case.max_error_eV(cal.gain_keV, cal.offset_keV)))
    return out


def test_no_result_more_than_30_eV_off_is_called_good(results):
    silent = [(c.seed, c.anode, c.kind, round(err)) for c, cal, err in results
              if cal is not None and cal.quality == "good" and err > 30.0]
    assert silent == []


def test_every_result_has_a_verdict_with_reasons(results):
    for _case, cal, _err in results:
        if cal is None:
            continue
        assert cal.quality in ("good", "doubtful", "failed")
        assert cal.checks and all(c["message"] for c in cal.checks)
        if cal.quality != "good":
            assert any(not c["passed"] for c in cal.checks) or not any(
                c["name"] == "independent lines" and c["passed"] for c in cal.checks)


def test_good_results_are_mostly_right(results):
    good = [err for _c, cal, err in results if cal is not None and cal.quality == "good"]
    assert len(good) >= 6  # the verdict is not "doubtful" for everything
    assert np.median(good) <= 10.0


@pytest.mark.parametrize("seed", [
    *range(5000, 5003),
    # a W blank at 88 degrees, the zero peak cut: every L blend is one peak, its Rayleigh
    # line's place ill-posed (L-alpha fitted 80 eV off at the true axis, L-gamma 236), and
    # the refinement follows them 427 eV off, further than the search (356): both doubtful
    pytest.param(5003, marks=pytest.mark.xfail(strict=True, reason="W L blends at 88 degrees")),
    *range(5004, 5012),
])
def test_refined_from_the_truth_stays_near_it(results, seed):
    """From the true axis of a synthetic spectrum the refinement moves no further than the
    automatic search's own error (the sweep's results) or 30 eV, whichever is larger (the
    two agree when the search found the true identities): it measures how well the peaks
    pin the axis, and makes no search of its own."""
    case, _auto, auto_err = results[SEEDS.index(seed)]
    cal = refine_calibration(case.counts, case.gain_keV, case.offset_keV, anode=case.anode,
                             tube_kv=case.tube_kv)
    err = case.max_error_eV(cal.gain_keV, cal.offset_keV)
    assert err <= max(30.0, auto_err if np.isfinite(auto_err) else 30.0) + 1.0  # 1 eV: fit round-off
