"""The verdict where users see it: calibrate (--json and text), convert (header, auto,
manual; a warning when doubtful or failed), info."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.errors import ParameterError
from maxrf.synth import make_scan

SPECTRA = Path(__file__).resolve().parents[1] / "data" / "spectra"


def maxrf(*args):
    return subprocess.run([sys.executable, "-m", "maxrf", *map(str, args)], capture_output=True, text=True)


def test_calibrate_json_and_text_show_the_verdict():
    path = SPECTRA / "Mo_50kv_acryl_f1.spx"
    assert path.is_file()
    r = maxrf("calibrate", path, "--anode", "Mo", "--tube-kv", "50", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["quality"] == "good"
    names = {c["name"] for c in out["checks"]}
    assert {"zero peak", "anode lines", "header", "independent lines"} <= names
    assert all(isinstance(c["message"], str) and c["passed"] for c in out["checks"])
    assert "Mo Ka" in out["residuals_eV"]
    r = maxrf("calibrate", path, "--anode", "Mo", "--tube-kv", "50")
    assert "verdict: good (every check passed)" in r.stdout
    assert re.search(r"\[ok\] zero peak: zero peak at -?0\.0\d\d keV", r.stdout)
    assert "[ok] header: agrees with the file header's calibration within" in r.stdout


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verdict")
    truth = make_scan(folder / "h.rpl", height=32, width=40, channels=2048, seed=31, offset_keV=0.15,
                      header_calibration=True)
    return folder / "h.rpl", truth


def test_convert_keeps_the_header_and_checks_it(scans, tmp_path):
    rpl, truth = scans
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good header calibration: no warning
        ds = convert(rpl, tmp_path / "h.datastack")
    cal = ds.calibration
    assert cal["method"] == "header" and cal["quality"] == "good"
    assert cal["gain_keV"] == truth.gain_keV and cal["offset_keV"] == truth.offset_keV
    header = next(c for c in cal["checks"] if c["name"] == "header")
    assert header["passed"] and header["max_difference_eV"] < 20
    info = json.loads(maxrf("info", ds.path, "--json").stdout)
    assert info["calibration"]["quality"] == "good"
    assert "verdict      good" in maxrf("info", ds.path).stdout


def test_convert_calibration_choices(scans, tmp_path):
    rpl, truth = scans
    ds = convert(rpl, tmp_path / "a.datastack", calibration="auto")
    cal = ds.calibration
    assert cal["method"] == "auto" and cal["quality"] in ("good", "doubtful", "failed")
    e_true = truth.offset_keV + truth.gain_keV * np.arange(2048)
    band = (e_true > 2) & (e_true < 20)
    if cal["quality"] == "good":
        assert np.abs(ds.energies[band] - e_true[band]).max() < 0.030
    header = next(c for c in cal["checks"] if c["name"] == "header")
    assert header["header_gain_keV"] == pytest.approx(truth.gain_keV)
    ds = convert(rpl, tmp_path / "m.datastack", calibration="manual", manual="100:1.0,1100:11.0")
    assert ds.calibration["method"] == "manual" and ds.calibration["gain_keV"] == pytest.approx(0.01)
    with pytest.raises(ParameterError, match="manual"):
        convert(rpl, tmp_path / "x.datastack", calibration="manual")
    with pytest.raises(ParameterError, match="calibration must be"):
        convert(rpl, tmp_path / "y.datastack", calibration="banana")


def test_convert_warns_when_the_header_disagrees(tmp_path):
    """A header 1 % off in gain: kept (it is the file's), but a visible, recorded warning."""
    truth = make_scan(tmp_path / "w.rpl", height=32, width=40, channels=2048, seed=31, offset_keV=0.15,
                      header_calibration=True)
    rpl = tmp_path / "w.rpl"
    wrong = truth.gain_keV * 1.01
    text = rpl.read_text()
    key = f"depthscaleincrement\t{truth.gain_keV!r}"
    assert key in text
    rpl.write_text(text.replace(key, f"depthscaleincrement\t{wrong!r}"))
    with pytest.warns(UserWarning, match="DOUBTFUL.*disagrees"):
        ds = convert(rpl, tmp_path / "w.datastack")
    cal = ds.calibration
    assert cal["method"] == "header" and cal["quality"] == "doubtful"
    assert cal["gain_keV"] == pytest.approx(wrong)
    assert "disagrees" in maxrf("info", ds.path).stdout


def test_report_shows_the_verdict(scans, tmp_path):
    from maxrf.report import build_report

    rpl, _truth = scans
    ds = convert(rpl, tmp_path / "r.datastack")
    html = build_report(ds)
    assert 'data-calibration-quality="good"' in html
    assert "<b>Verdict:</b> good: every consistency check passed" in html
    assert 'data-check="header" data-passed="ok"' in html
