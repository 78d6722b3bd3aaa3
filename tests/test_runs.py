"""Stored element maps accumulate by element; the report and the CLI say which run is which."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def scan(tmp_path):
    from maxrf.convert import convert
    from maxrf.synth import make_scan

    make_scan(tmp_path / "scan", height=20, width=24, channels=1024, seed=8,
              elements=["Ca", "Fe", "Cu", "Pb"], n_speckles=2)
    return convert(tmp_path / "scan.rpl")


def test_new_map_replaces_only_its_element(scan, tmp_path, capsys):
    from maxrf.cli import main
    from maxrf.maps import compute_maps

    first = compute_maps(scan, peaks=False, elements=["Ca", "Fe", "Cu", "Pb"], method="window",
                         store=True)
    before = {el: np.array(first.elements.maps[i]) for i, el in enumerate(first.elements.elements)}
    run1 = scan.read("element_maps").attrs["runs"]["Cu"]["run"]
    assert main(["maps", str(scan.path), "--elements", "Fe", "--force", "--format", "tiff",
                 "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "replaced the stored Fe map" in out and "kept Ca, Cu, Pb" in out
    layer = scan.read("element_maps")
    assert sorted(layer.attrs["elements"]) == ["Ca", "Cu", "Fe", "Pb"]
    maps = dict(zip(layer.attrs["elements"], np.asarray(layer["maps"])))
    for el in ("Ca", "Cu", "Pb"):  # untouched, from the first run
        np.testing.assert_array_equal(maps[el], before[el])
        assert layer.attrs["runs"][el] == {**layer.attrs["runs"][el], "run": run1, "method": "window"}
    assert layer.attrs["runs"]["Fe"]["method"] == "fit"
    assert not np.array_equal(maps["Fe"], before["Fe"])  # the fit, not the window map
    ref = compute_maps(scan, peaks=False, elements=["Fe"], method="fit").elements.maps[0]
    np.testing.assert_allclose(maps["Fe"], ref, rtol=1e-5, atol=1e-3)

    from maxrf.report import write_report

    write_report(scan, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert "several runs" in text and text.count('class="run"') == 4
    assert "fit" in text.split('data-card="Fe"')[1].split('class="run"')[1][:80]


def test_maps_without_identification_identifies_first(scan, tmp_path, capsys):
    from maxrf.cli import main

    assert "identification" not in scan.layers
    assert main(["maps", str(scan.path), "--format", "tiff", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert out.count("identifying the elements first") == 1
    assert "identification" in scan.layers
    els = scan.read("element_maps").attrs["elements"]
    assert {"Fe", "Pb"} <= set(els)


def test_maps_no_identify_says_how(scan, tmp_path, capsys):
    from maxrf.cli import main

    assert main(["maps", str(scan.path), "--no-identify", "--format", "tiff",
                 "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "no element maps" in out and "maxrf identify" in out
    assert "element_maps" not in scan.layers


def test_unknown_element_leaves_no_folder(scan, tmp_path, capsys):
    from maxrf.cli import main

    assert main(["maps", str(scan.path), "--elements", "Xx", "--out", str(tmp_path / "m1")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "m1").exists()


def test_info_lists_elements_and_runs(scan, tmp_path, capsys):
    from maxrf.cli import main
    from maxrf.maps import compute_maps

    scan.write_layer("identification", {"s": np.zeros(1)}, {"elements": [
        {"element": "Fe", "status": "present"}, {"element": "Pb", "status": "present"},
        {"element": "Re", "status": "possible"}, {"element": "Hg", "status": "absent"}]})
    compute_maps(scan, peaks=False, elements=["Fe", "Pb"], method="window", store=True)
    compute_maps(scan, peaks=False, elements=["Fe"], method="fit", store=True)
    assert main(["info", str(scan.path)]) == 0
    out = capsys.readouterr().out
    assert "elements     Fe, Pb; possible: Re?" in out and "Hg" not in out
    runs = [line for line in out.splitlines() if line.strip().startswith("map run")]
    assert len(runs) == 2 and any("(fit): Fe" in r for r in runs) and any("(window): Pb" in r for r in runs)


def test_report_scale_bar_from_the_header_pixel_size(tmp_path):
    """A header with rosettasciio's width-scale (0.2 mm): a scale bar of the right length."""
    from maxrf.convert import convert
    from maxrf.maps import compute_maps
    from maxrf.report import write_report
    from maxrf.report.scale import nice_length

    from conftest import poisson_cube, write_pair

    rpl = write_pair(tmp_path, poisson_cube(1, shape=(12, 50, 64)),
                     extra="width-scale\t200\nwidth-units\tum\n")
    ds = convert(rpl, calibrate=False)
    ds.write_layer("calibration", {"energies": np.arange(64) * 0.3},
                   {"gain_keV": 0.3, "offset_keV": 0.0, "method": "manual", "peaks": []})
    compute_maps(ds, peaks=False, elements=["Fe"], method="window", store=True)
    write_report(ds, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert 'data-scalebar-mm="2"' in html  # 50 px x 0.2 mm = 10 mm: a 2 mm bar
    bar = float(html.split('data-scalebar-mm="2"')[1].split('width="')[2].split('"')[0])
    assert abs(bar - 260 * 2 / 10) < 0.2
    assert nice_length(10) == 2 and nice_length(0.3) == 0.05
