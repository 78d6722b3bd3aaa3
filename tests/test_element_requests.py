"""Results say what they are: no speckles, maps or labels for an element without evidence."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.errors import ParameterError


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A drawing with Pb (La 10.55 keV, next to As Ka 10.54) and no arsenic, converted, with
    its peak maps and a stored identification (Pb present, Re possible)."""
    from maxrf.convert import convert
    from maxrf.maps import compute_maps
    from maxrf.synth import make_scan

    folder = tmp_path_factory.mktemp("evidence")
    make_scan(folder / "scan", height=24, width=32, channels=1024, seed=3,
              elements=["Ca", "Fe", "Pb"], n_speckles=3)
    ds = convert(folder / "scan.rpl")
    compute_maps(ds, peaks=True, store=True)
    ds.write_layer("identification", {"scores": np.zeros(3)}, {"elements": [
        {"element": "Pb", "status": "present"}, {"element": "Fe", "status": "present"},
        {"element": "Re", "status": "possible"}, {"element": "As", "status": "absent"}]})
    return ds


def test_speckles_of_an_absent_element_are_refused(scan):
    from maxrf.evidence import EvidenceError
    from maxrf.speckles import element_map_of, find_speckles

    _img, source = element_map_of(scan, "As")  # what the old path silently used
    assert "10.5" in source  # the Pb La peak map: a confident wrong answer without the check
    for element in ("As", "K"):  # absent, and not listed at all
        with pytest.raises(EvidenceError, match=f"no speckles of {element}") as err:
            find_speckles(scan, element, store=False)
        assert "window=(KEV1, KEV2)" in str(err.value)  # Python speaks Python


def test_speckles_cli_one_line_and_explicit_window(scan, capsys):
    from maxrf.cli import main

    assert main(["speckles", str(scan.path), "--element", "As"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "As" in err[0] and "--window" in err[0]
    assert main(["speckles", str(scan.path), "--element", "As", "--window", "10.3:10.8"]) == 0
    out = capsys.readouterr().out
    assert "window 10.3-10.8 keV" in out
    assert scan.read("speckles").attrs["source"].startswith("window 10.")
    assert main(["speckles", str(scan.path), "--window", "10:9"]) == 1


def test_segmentation_of_an_absent_element_is_refused(scan):
    from maxrf.evidence import EvidenceError
    from maxrf.segmentation import segment_datastack
    from maxrf.speckles import element_map_of

    assert "10.5" in element_map_of(scan, "As")[1]  # Pb La would stand in without the check
    for element in ("As", "K"):
        with pytest.raises(EvidenceError, match=f"no segmentation of {element}"):
            segment_datastack(scan, element, store=False)
    seg = segment_datastack(scan, "As", window=(10.3, 10.8), store=False)
    assert seg.evidence["source"].startswith("window 10.")


def test_segment_cli_one_line_and_explicit_window(scan, tmp_path, capsys):
    from maxrf.cli import main

    for argv in (["segment", str(scan.path), "--element", "As"],
                 ["speckles", str(scan.path), "--element", "As", "--classes",
                  str(tmp_path / "c.tiff")]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "As" in err[0] and "--window KEV1:KEV2" in err[0], err
    assert not (tmp_path / "c.tiff").exists()
    assert main(["segment", str(scan.path), "--element", "As", "--window", "10.3:10.8"]) == 0
    assert "in the window 10.3-10.8 keV" in capsys.readouterr().out
    assert scan.read("segmentation").attrs["evidence"]["source"].startswith("window 10.")
    assert main(["segment", str(scan.path), "--element", "Re", "--window", "8.5:8.8"]) == 0
    assert main(["segment", str(scan.path), "--element", "Pb"]) == 0  # present: its map
    assert "particles of Pb," in capsys.readouterr().out


def test_window_map_equals_numpy(scan):
    from maxrf.speckles import window_map

    img, _ = window_map(scan, (6.2, 6.6))
    e = np.asarray(scan.energies())
    lo, hi = np.searchsorted(e, 6.2), np.searchsorted(e, 6.6)
    cube = np.asarray(scan.cube.compute(), dtype=np.float64)[:, :, lo:hi + 1]
    ref = cube.sum(axis=2) / (hi - lo) - (cube[:, :, 0] + cube[:, :, -1]) / 2
    np.testing.assert_allclose(img, ref, rtol=1e-5, atol=1e-4)


def test_maps_of_an_absent_element_are_refused_unless_forced(scan, tmp_path, capsys):
    from maxrf.cli import main

    assert main(["maps", str(scan.path), "--elements", "As", "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no map of As" in err[0] and "--force" in err[0]
    assert "--window" not in err[0]  # maps has no such option
    assert not (tmp_path / "m").exists()
    assert main(["maps", str(scan.path), "--elements", "Re", "--method", "window", "--quiet",
                 "--format", "tiff", "--out", str(tmp_path / "m")]) == 0  # possible: allowed


def test_evidence_statuses(scan):
    from maxrf.evidence import element_evidence, label, parse_window

    assert [element_evidence(scan, el) for el in ("Pb", "re", "As", "Zn")] == [
        "present", "possible", "absent", "absent"]
    assert label("Re", "possible") == "Re?" and label("Pb", "present") == "Pb"
    assert parse_window("6.2:6.6") == (6.2, 6.6)
    with pytest.raises(ParameterError):
        parse_window("6.2-6.6")


def test_a_possible_element_is_shown_as_possible_everywhere(scan, tmp_path, capsys):
    """Report headings, viewer map labels and element list, ``maxrf info``: 'Re?', never 'Re'."""
    import re

    from maxrf.cli import main
    from maxrf.report import build_report
    from maxrf.viewer.app import ViewerApp

    assert main(["maps", str(scan.path), "--elements", "Pb,Re", "--method", "window", "--quiet",
                 "--format", "tiff", "--out", str(tmp_path / "m")]) == 0
    html = build_report(scan)
    headings = dict(re.findall(r'data-card="(Pb|Re)"><h3>([^<]+?) <span', html))
    assert headings == {"Pb": "Pb", "Re": "Re?"}
    info = ViewerApp(scan).info()
    labels = {m["key"]: m["label"] for m in info["maps"] if m["layer"] == "element_maps"}
    assert labels == {"Pb": "Pb", "Re": "Re?"}
    assert {e["element"]: e["status"] for e in info["elements"]}["Re"] == "possible"
    assert main(["info", str(scan.path)]) == 0
    out = capsys.readouterr().out
    assert "possible: Re?" in out
    run = [line for line in out.splitlines() if "map run" in line and "Pb" in line]
    assert run and run[0].rstrip().endswith("Pb, Re?"), run


def test_identify_cli_lists_possible_apart(monkeypatch, capsys, tmp_path):
    from maxrf.cli import identify as cli_identify

    class R:
        def __init__(self, el, status):
            self.element, self.status, self.trace = el, status, False

    class Result:
        spectra = [0]
        anode, tube_kv = "Rh", 40.0
        elements = [R("Fe", "present"), R("Re", "possible")]
        present, possible = ["Fe"], ["Re"]

        def table(self, absent=False):
            return "table"

        def evidence(self, absent=False):
            return ""

    import maxrf.identify

    monkeypatch.setattr(maxrf.identify, "identify", lambda *a, **k: Result())
    args = type("A", (), {"source": "x", "anode": None, "tube_kv": None, "no_write": True,
                          "json": False, "all": False})()
    cli_identify.run(args)
    out = capsys.readouterr().out
    assert "present: Fe" in out and "possible (not confirmed): Re?" in out
    assert "Re" not in out.split("present: ")[1].splitlines()[0]
