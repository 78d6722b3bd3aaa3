"""The self-contained HTML report (maxrf.report) against fake layers that follow the schemas.

The datastacks come from ``report_stacks.make_stack`` (every standard layer written by
hand from the schemas, so these tests do not depend on the other steps).
"""

from __future__ import annotations

import base64
import re
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest

from maxrf.store import DataStack
from report_stacks import ALL_LAYERS, ELEMENTS, make_stack


# --------------------------------------------------------------------------- HTML parsing
class Collect(HTMLParser):
    """Every start tag with its attributes; the text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Collect:
    p = Collect()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return make_stack(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def full_report(full):
    from maxrf.report import write_report

    ds = full[0]
    path = write_report(ds, ds.path.parent / "report.html")
    return path, path.read_text()


# --------------------------------------------------------------------------- tests
def test_report_is_self_contained(full_report):
    path, html = full_report
    doc = parse(html)
    assert path.name == "report.html"
    for tag, attrs in doc.tags:
        assert tag not in ("link", "iframe", "object", "embed"), tag
        if tag == "script":
            assert "src" not in attrs
        for key in ("src", "href"):
            v = attrs.get(key, "")
            assert not v or v.startswith(("data:", "#")), f"{tag} {key}={v[:60]}"
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    assert "url(" not in html.replace("url(#", "")  # only local SVG gradient references


def test_every_map_and_spectrum_is_there(full, full_report):
    ds = full[0]
    doc = parse(full_report[1])
    maps = [a for t, a in doc.tags if t == "img" and "data-map" in a]
    el_maps = ds.read("element_maps").attrs["elements"]
    labels = ds.read("peak_maps").attrs["labels"]
    for view in ("linear", "equalised"):
        got = [a["data-map"] for a in maps if a["data-layer"] == "element_maps" and a["data-view"] == view]
        assert got == el_maps
        got = [a["data-map"] for a in maps if a["data-layer"] == "peak_maps" and a["data-view"] == view]
        assert got == [f"peak:{label}" for label in labels]
    for a in maps:  # every image is a decodable PNG
        png = base64.b64decode(a["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    spectra = sorted(a["data-spectrum"] for t, a in doc.tags if t == "svg" and "data-spectrum" in a)
    assert spectra == ["max", "sum"]
    assert len([a for t, a in doc.tags if "data-hotmax" in a]) == 3
    assert len([a for t, a in doc.tags if t == "img" and a.get("data-speckles") == "map"]) == 1
    assert len([a for t, a in doc.tags if t == "table" and a.get("data-speckles") == "table"]) == 1
    assert len([a for t, a in doc.tags if "data-chi2" in a]) == 1
    # a colour bar per map view
    assert len([a for t, a in doc.tags if t == "svg" and "data-colorbar" in a]) == len(maps) + 1
    states = {a["data-layer-status"]: a["data-state"] for t, a in doc.tags if "data-layer-status" in a}
    assert states == dict.fromkeys(ALL_LAYERS, "computed")
    assert "could not be drawn" not in full_report[1]
    assert "not computed" not in full_report[1]


def test_spectra_label_identified_lines_only(full_report):
    html = full_report[1]
    svg = re.search(r'<svg[^>]*data-spectrum="sum".*?</svg>', html, re.S).group(0)
    labels = re.findall(r'class="mlabel"[^>]*>([^<]+)<', svg)
    for el in ELEMENTS:
        assert el in labels
    assert "Hg" not in labels  # status 'absent': no marker
    assert "energy (keV)" in svg
    assert 'data-line="Fe Ka"' in svg


def test_summary_shows_scan_and_calibration(full, full_report):
    text = " ".join(parse(full_report[1]).text)
    assert "24 × 32 pixels" in text and "512 channels" in text
    assert "E = -0.1000 keV + 40.0000 eV × channel" in text
    assert "Fe Ka" in text and "iron" in text and "lead" in text
    assert "4.95 keV" in text  # unexplained peak


def test_missing_layers_are_marked_not_computed(tmp_path):
    from maxrf.report import build_report

    ds, _cube, _maps = make_stack(tmp_path, h=6, w=7, c=128, layers=())
    html = build_report(ds)
    doc = parse(html)
    states = {a["data-layer-status"]: a["data-state"] for t, a in doc.tags if "data-layer-status" in a}
    assert states == dict.fromkeys(ALL_LAYERS, "not computed")
    missing = {a["data-missing"] for t, a in doc.tags if "data-missing" in a}
    assert missing == set(ALL_LAYERS)
    for cmd in ("maxrf calibrate", "maxrf hotmax", "maxrf identify", "maxrf maps", "maxrf speckles"):
        assert f"<code>{cmd}</code>" in html
    assert "channel (no energy calibration)" in html  # spectra still drawn, on channels
    assert len([a for t, a in doc.tags if "data-spectrum" in a]) == 2
    assert not [a for t, a in doc.tags if "data-map" in a]
    assert "could not be drawn" not in html


def test_damaged_layers_do_not_stop_the_report(tmp_path):
    from maxrf.report import build_report

    ds, cube, maps = make_stack(tmp_path, h=6, w=7, c=128, layers=("calibration",))
    ds.write_layer("element_maps", {"maps": np.zeros((2, 3, 3), np.float32)}, {"elements": ["Fe", "Pb"]})
    ds.write_layer("peak_maps", {"maps": np.zeros((2, 6, 7), np.float32)}, {"labels": ["only one"]})
    ds.write_layer("identification", {}, {"elements": "Fe"})
    ds.write_layer("hotmax", {"spectra": np.zeros((2, 5))}, {})
    ds.write_layer("speckles", {"labels": np.zeros((2, 2), np.int32)}, {"table": 7})
    html = build_report(ds)
    doc = parse(html)
    states = {a["data-layer-status"]: a["data-state"] for t, a in doc.tags if "data-layer-status" in a}
    assert states["calibration"] == "computed"
    for name in ("element_maps", "identification", "hotmax", "speckles"):
        assert states[name] == "damaged", name
    # peak maps with a wrong label count are still shown, with generic labels
    assert states["peak_maps"] == "computed"
    assert len([a for t, a in doc.tags if a.get("data-layer") == "peak_maps"]) == 4
    assert "could not be drawn" not in html


def test_hotmax_uses_plot_puzzle_when_it_works(full, monkeypatch):
    import matplotlib.pyplot as plt

    from maxrf.report import build
    from maxrf.report.hotmax import _PuzzleMaker

    calls = []

    class FakeAtlas:
        def __init__(self, ds):
            self.ds = ds

    def fake_puzzle(atlas, n):
        calls.append(n)
        fig, ax = plt.subplots()
        ax.plot(np.arange(5))
        return fig, ax

    monkeypatch.setattr(_PuzzleMaker, "_atlas", lambda self: FakeAtlas(self.ds))
    monkeypatch.setattr(_PuzzleMaker, "plot", staticmethod(fake_puzzle))
    plt.close("all")  # figures other tests of this process left open are not the report's
    html = build.build_report(full[0])
    assert calls == [0, 1, 2]
    assert len(re.findall(r'<img class="puzzle" data-hotmax="\d"', html)) == 3
    assert plt.get_fignums() == []

    def broken(atlas, n):
        raise RuntimeError("not finished")

    monkeypatch.setattr(_PuzzleMaker, "plot", staticmethod(broken))
    html = build.build_report(full[0])
    assert len(re.findall(r'<svg[^>]*data-hotmax="\d"', html)) == 3  # drawn plainly


def test_large_maps_are_reduced(full):
    from maxrf.report import build_report

    html = build_report(full[0], max_map_side=10)
    assert "Shown at 1/4 resolution" in html


def test_write_report_default_path_and_errors(tmp_path):
    from maxrf.errors import OutputLocationError
    from maxrf.report import write_report

    ds, _cube, _maps = make_stack(tmp_path, h=4, w=5, c=64, layers=("calibration",), name="panel")
    out = write_report(ds.path)  # a path works too
    assert out == tmp_path / "panel_report.html"
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert write_report(ds, out) == out  # replaced
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(OutputLocationError, match="does not exist"):
        write_report(ds, tmp_path / "nope" / "r.html")
    with pytest.raises(OutputLocationError, match="folder"):
        write_report(ds, tmp_path)


def test_cli_report(tmp_path, capsys):
    from maxrf.cli import main

    ds, _cube, _maps = make_stack(tmp_path, h=4, w=5, c=64, layers=())
    assert main(["report", str(ds.path), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file()
    assert "r.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.datastack")]) == 1
    assert "missing.datastack" in capsys.readouterr().err


def test_possible_and_absent_elements(tmp_path):
    from maxrf.report import build_report

    ds, _cube, _maps = make_stack(tmp_path, h=4, w=5, c=512, layers=("calibration",))
    ds.write_layer(
        "identification",
        {},
        {
            "elements": [
                {"element": "Fe", "status": "present", "confidence": 0.9, "lines": []},
                {"element": "Zn", "status": "possible", "confidence": 0.4, "lines": []},
                {"element": "Hg", "status": "absent", "confidence": 0.0, "lines": []},
                {"element": "As", "status": "absent", "confidence": 0.0, "lines": []},
            ],
            "instrument": [],
            "unexplained_keV": [],
            "anode": "Rh",
            "tube_kv": 40.0,
        },
    )
    html = build_report(ds)
    labels = re.findall(r'class="mlabel"[^>]*>([^<]+)<', html)
    assert "Fe" in labels and "Zn?" in labels and "Hg" not in labels
    doc = parse(html)
    rows = [a["data-element"] for t, a in doc.tags if t == "tr" and "data-element" in a]
    assert rows == ["Fe", "Zn"]  # absent ones are only listed in a note
    assert "Also checked and not found (2): As, Hg." in html


def test_report_does_not_write_to_the_datastack(full):
    from maxrf.report import build_report
    from maxrf.store import MANIFEST

    ds = full[0]
    before = (ds.path / MANIFEST).read_bytes()
    files = sorted(p.relative_to(ds.path) for p in ds.path.rglob("*"))
    build_report(ds)
    assert (ds.path / MANIFEST).read_bytes() == before
    assert sorted(p.relative_to(ds.path) for p in ds.path.rglob("*")) == files


def test_cli_report_options(tmp_path, capsys):
    from maxrf.cli import main

    ds, _cube, _maps = make_stack(tmp_path, h=4, w=5, c=64, layers=())
    out = tmp_path / "t.html"
    assert main(["report", str(ds.path), "-o", str(out), "--title", "Panel <A>", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert "<title>Panel &lt;A&gt;</title>" in out.read_text()
    assert main(["report", str(ds.path), "--max-map-side", "3"]) == 1
    assert "--max-map-side" in capsys.readouterr().err


def test_maps_are_read_one_at_a_time(tmp_path):
    """The report and the viewer hold views of the stored maps, not the maps: listing 40
    maps allocates a small fraction of their size, and each view reads exactly its map."""
    import tracemalloc

    from maxrf.report import build
    from maxrf.report.layers import map_entries

    h, w = 160, 200
    ds, _cube, _maps = make_stack(tmp_path, h=h, w=w, c=64, layers=("calibration",))
    stack = np.random.default_rng(11).gamma(2.0, 50.0, (40, h, w)).astype(np.float32)
    kev = np.linspace(1.5, 15.0, 40)
    ds.write_layer("peak_maps", {"maps": stack, "keV_maps": stack, "slices": np.zeros((40, 3), int),
                                 "peaks_keV": kev}, {"labels": [f"p{i}" for i in range(40)]})
    ds = DataStack(ds.path)
    tracemalloc.start()
    entries, statuses = map_entries(ds)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert statuses["peak_maps"].ok and len(entries) == 40
    assert peak < stack.nbytes / 10, peak  # 5 MB of maps; the listing takes a few pixels' worth
    for i in (0, 17, 39):
        np.testing.assert_array_equal(np.asarray(entries[i].data), stack[i])
        assert entries[i].keV == pytest.approx(kev[i])
    # the report's gallery draws every map from its view, in both views
    doc = parse(build.build_report(ds, max_map_side=64))
    shown = [a["data-map"] for t, a in doc.tags
             if t == "img" and a.get("data-layer") == "peak_maps" and a.get("data-view") == "linear"]
    assert shown == [f"peak:p{i}" for i in range(40)]


def _block_reference(a: np.ndarray, f: int, reduce, fill) -> np.ndarray:
    """Blocks of f x f reduced in one go over the padded map (the plain numpy way)."""
    h, w = a.shape
    hh, ww = -(-h // f) * f, -(-w // f) * f
    pad = np.full((hh, ww), fill, dtype=np.result_type(a, type(fill)))
    pad[:h, :w] = a
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        return reduce(pad.reshape(hh // f, f, ww // f, f), axis=(1, 3))


@pytest.mark.parametrize("shape, max_side", [((103, 61), 20), ((37, 250), 64), ((50, 40), 64),
                                             ((1, 300), 7)])
def test_banded_reduction_equals_one_pass(monkeypatch, shape, max_side):
    """Maps are reduced for display a band of rows at a time; the result is the block mean
    of the whole map (NaN left out), and the range is the full-resolution range."""
    from maxrf.report import figures
    from maxrf.report.layers import MapView

    monkeypatch.setattr(figures, "BAND_PIXELS", 97)  # many small bands
    rng = np.random.default_rng(shape[0])
    a = rng.gamma(1.5, 10.0, shape).astype(np.float32)
    a[rng.random(shape) < 0.05] = np.nan
    f = max(1, -(-max(shape) // max_side))
    small, factor, lo, hi = MapView(a, None, shape).reduced(max_side)
    assert factor == f and max(small.shape) <= max_side
    np.testing.assert_allclose(small, _block_reference(a.astype(np.float64), f, np.nanmean, np.nan)
                               if f > 1 else a, rtol=1e-12, equal_nan=True)
    assert (lo, hi) == (float(np.nanmin(a)), float(np.nanmax(a)))
    stack = np.stack([a, 2 * a])  # a view of a stack reads its own map
    small2 = MapView(stack, 1, shape).reduced(max_side)[0]
    np.testing.assert_allclose(small2, 2 * small, rtol=1e-6, equal_nan=True)
    mask = rng.random(shape) < 0.01
    got, fm = figures.downsample_any(mask, max_side)
    assert fm == f
    np.testing.assert_array_equal(got, _block_reference(mask, f, np.any, False) if f > 1 else mask)
