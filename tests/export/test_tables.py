"""CSV export of spectra: read back with the csv module and compared with numpy sums."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from maxrf.cli import main
from maxrf.convert import convert
from maxrf.errors import ParameterError
from maxrf.export.tables import export_csv
from maxrf.io.ripple import write_ripple


def test_csv_spectra_round_trip(tmp_path):
    cube = np.random.default_rng(1).poisson(4.0, (7, 9, 50)).astype(np.uint16)
    ds = convert(write_ripple(tmp_path / "s.rpl", cube, calibration=(0.02, -0.1)), calibrate=False)
    out = export_csv(ds, tmp_path / "s.csv", pixels=[(2, 3), (6, 8)])
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50
    np.testing.assert_allclose([float(r["energy_keV"]) for r in rows], -0.1 + 0.02 * np.arange(50), atol=1e-6)
    np.testing.assert_allclose([float(r["mean_counts"]) for r in rows], cube.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_array_equal([float(r["max_counts"]) for r in rows], cube.max(axis=(0, 1)))
    np.testing.assert_array_equal([int(r["pixel_6_8"]) for r in rows], cube[6, 8])
    with pytest.raises(ParameterError, match="outside"):
        export_csv(ds, tmp_path / "t.csv", pixels=[(7, 0)])
    assert not (tmp_path / "t.csv").exists()


def test_cli_export_csv_and_errors(tmp_path, capsys):
    ds = convert(write_ripple(tmp_path / "s.rpl", np.ones((3, 4, 8), np.uint16)), calibrate=False)
    assert main(["export", str(ds.path), "--to", "csv", "-o", str(tmp_path / "x.csv")]) == 0
    header = (tmp_path / "x.csv").read_text().splitlines()[0]
    assert header == "channel,energy_keV,mean_counts,max_counts"
    assert main(["export", str(ds.path), "--to", "csv", "-o", str(tmp_path / "x.csv")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(ds.path), "--to", "tiff-stack"]) == 1
    assert "maxrf maps" in capsys.readouterr().err
