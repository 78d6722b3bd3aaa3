"""maxrf calibrate on a datastack and on real spectrum files; convert calibrates itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maxrf import DataStack
from maxrf.calibration import calibrate_datastack
from maxrf.convert import convert
from maxrf.errors import CalibrationError
from maxrf.synth import make_scan

SPECTRA = Path(__file__).resolve().parents[1] / "data" / "spectra"  # vendored, public domain


def maxrf(*args):
    return subprocess.run([sys.executable, "-m", "maxrf", *map(str, args)], capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cal")
    truth = make_scan(folder / "s.rpl", height=32, width=40, channels=2048, seed=31, offset_keV=0.15)
    return folder / "s.rpl", truth


def test_convert_calibrates_within_10_eV(scan, tmp_path):
    rpl, truth = scan
    ds = convert(rpl, tmp_path / "a.datastack")
    assert ds.calibration["method"] == "auto"
    e_true = truth.offset_keV + truth.gain_keV * np.arange(2048)
    band = (e_true > 2) & (e_true < 20)
    assert np.abs(ds.energies[band] - e_true[band]).max() < 0.010


def test_info_json_reports_calibration(scan, tmp_path):
    rpl, truth = scan
    convert(rpl, tmp_path / "b.datastack")
    info = json.loads(maxrf("info", tmp_path / "b.datastack", "--json").stdout)
    assert abs(info["calibration"]["gain_keV"] - truth.gain_keV) < 1e-4
    assert abs(info["calibration"]["offset_keV"] - truth.offset_keV) < 0.01


def test_manual_and_range_override(scan, tmp_path):
    rpl, _truth = scan
    ds = convert(rpl, tmp_path / "c.datastack", calibrate=False)
    cal = calibrate_datastack(ds, manual="100:1.0,1100:11.0")
    assert cal.gain_keV == pytest.approx(0.01) and cal.offset_keV == pytest.approx(0.0)
    np.testing.assert_allclose(DataStack(ds.path).energies[[100, 1100]], [1.0, 11.0])
    r = maxrf("calibrate", ds.path, "--range", "0:20.47", "--json")
    out = json.loads(r.stdout)
    assert out["gain_keV"] == pytest.approx(20.47 / 2047) and out["offset_keV"] == pytest.approx(0)
    with pytest.raises(CalibrationError):
        calibrate_datastack(ds, manual="100:1.0")
    r = maxrf("calibrate", ds.path, "--manual", "banana")
    assert r.returncode == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["Fe", "Cu", "Zr", "Acrylic"])
def test_cli_on_real_spectra_reports_header_beside(name):
    path = SPECTRA / f"{name}_50kv_Rh_vac.msa"
    r = maxrf("calibrate", path, "--tube-kv", "50", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    header = out["header"]
    ch = np.arange(4096)
    e_hdr = header["offset_keV"] + header["gain_keV"] * ch
    e_auto = out["offset_keV"] + out["gain_keV"] * ch
    band = (e_hdr > 2) & (e_hdr < 20)
    assert np.abs(e_auto - e_hdr)[band].max() < 0.010
    assert all({"name", "channel", "keV", "residual_eV"} <= set(p) for p in out["peaks"])
    assert any(p["name"].startswith("Rh") for p in out["peaks"])
