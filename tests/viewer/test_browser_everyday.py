"""The viewer in a real headless browser (Debian's chromium): its physical scale bar, and a
possible element shown as possible.

The bar's length is checked against the map's drawn width and the pixel size (from the
scan's header, or given), not against the code's own numbers: its share of the map's
width must be the bar's length over the scan's width in mm.
"""

from __future__ import annotations

import numpy as np
import pytest

# the shared browser fixture and the browser marks of test_browser
from test_browser import browser, pytestmark  # noqa: F401

from conftest import poisson_cube, write_pair


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """50 x 12 pixels, header pixel size 200 µm (rosettasciio's width-scale): 10 mm wide."""
    from maxrf.convert import convert
    from maxrf.maps import compute_maps

    d = tmp_path_factory.mktemp("scalebar")
    rpl = write_pair(d, poisson_cube(1, shape=(12, 50, 64)),
                     extra="width-scale\t200\nwidth-units\tum\n")
    ds = convert(rpl, calibrate=False)
    ds.write_layer("calibration", {"energies": np.arange(64) * 0.3},
                   {"gain_keV": 0.3, "offset_keV": 0.0, "method": "manual", "peaks": []})
    compute_maps(ds, peaks=False, elements=["Fe"], method="window", store=True)
    return ds


def _served(ds, **kwargs):
    from maxrf.viewer import make_server

    srv = make_server(ds, port=0, **kwargs)
    srv.start_thread()
    return srv


def _bar(browser, url, width=1200):  # noqa: F811
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(url)
    page.wait_for_function("() => window.maxrf && window.maxrf.ready", timeout=20000)
    page.wait_for_timeout(100)
    got = page.evaluate("""() => {
        const box = document.getElementById('scalebar');
        return {hidden: box.hidden,
                bar: document.getElementById('scalebar-bar').getBoundingClientRect().width,
                label: document.getElementById('scalebar-label').textContent,
                map: document.getElementById('map-canvas').getBoundingClientRect().width};
    }""")
    page.close()
    return got


@pytest.mark.parametrize("given, length_mm, label", [
    (None, 2.0, "2 mm"),      # header: 50 x 0.2 mm = 10 mm, a fifth is 2 mm
    (0.05, 0.5, "500 µm"),    # --pixel-size-mm 0.05: 2.5 mm wide, a 0.5 mm bar
    (1.3, 10.0, "10 mm"),     # 65 mm wide: a fifth is 13 mm, the nearest round length 10 mm
])
def test_scale_bar_length_matches_the_map(browser, scan, given, length_mm, label):  # noqa: F811
    srv = _served(scan, pixel_size_mm=given)
    try:
        span_mm = 50 * (given or 0.2)
        for width in (1200, 700):  # the bar follows the map's drawn size
            got = _bar(browser, srv.url, width)
            assert not got["hidden"] and got["label"] == label
            assert abs(got["bar"] - got["map"] * length_mm / span_mm) < 1.0, got
    finally:
        srv.shutdown()
        srv.server_close()


def test_no_scale_bar_without_a_pixel_size(browser, tmp_path):  # noqa: F811
    from maxrf.convert import convert

    ds = convert(write_pair(tmp_path, poisson_cube(2, shape=(12, 20, 32))), calibrate=False)
    ds.write_layer("element_maps", {"maps": np.ones((1, 12, 20), np.float32)},
                   {"elements": ["Fe"], "method": "window"})
    srv = _served(ds)
    try:
        assert _bar(browser, srv.url)["hidden"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_pixel_size_options(scan, tmp_path, capsys):
    from maxrf.cli import main
    from maxrf.viewer.app import ViewerApp

    assert ViewerApp(scan).info()["pixel_size_mm"] == pytest.approx(0.2)
    assert ViewerApp(scan, pixel_size_mm=0.05).info()["pixel_size_mm"] == 0.05
    out = tmp_path / "r.html"
    assert main(["report", str(scan.path), "-o", str(out), "--pixel-size-mm", "0.05",
                 "--quiet"]) == 0
    assert 'data-scalebar-mm="0.5"' in out.read_text()  # given beats the header's 0.2 mm
    for cmd in (["view", str(scan.path), "--port", "0"], ["report", str(scan.path)]):
        assert main([*cmd, "--pixel-size-mm", "-1"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--pixel-size-mm" in err[0]


def test_possible_element_shown_as_possible_in_the_browser(browser, tmp_path):  # noqa: F811
    """The viewer's header and map list show a possible element as 'Re?', never as present."""
    from maxrf.convert import convert

    ds = convert(write_pair(tmp_path, poisson_cube(3, shape=(12, 20, 32))), calibrate=False)
    ds.write_layer("element_maps", {"maps": np.ones((2, 12, 20), np.float32)},
                   {"elements": ["Fe", "Re"], "method": "window"})
    ds.write_layer("identification", {"scores": np.zeros(3)}, {"elements": [
        {"element": "Fe", "status": "present"}, {"element": "Re", "status": "possible"},
        {"element": "As", "status": "absent"}]})
    srv = _served(ds)
    try:
        page = browser.new_page()
        page.goto(srv.url)
        page.wait_for_function("() => window.maxrf && window.maxrf.ready", timeout=20000)
        sub = page.inner_text("#scan-sub")
        options = page.eval_on_selector_all("#map-select option", "os => os.map(o => o.textContent)")
        page.close()
    finally:
        srv.shutdown()
        srv.server_close()
    assert "elements: Fe" in sub and "possible: Re?" in sub and "As" not in sub, sub
    assert "Re?" in options and "Re" not in options and "Fe" in options, options
