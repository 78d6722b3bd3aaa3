"""Maps on the registered photograph in a real headless browser: the report's controls and the
viewer's photo click (the spectrum shown is the cube's spectrum of the scan pixel beneath)."""

from __future__ import annotations

import numpy as np
import pytest
from test_browser import browser, pytestmark  # noqa: F401  (one chromium fixture, its marks)

from maxrf.convert import convert
from maxrf.io.photo import sha256_file
from maxrf.registration.homography import apply
from maxrf.registration.result import Registration, write_registration
from maxrf.report import write_report
from maxrf.synth_photo import make_photo

from conftest import poisson_cube, write_pair


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    d = tmp_path_factory.mktemp("bphoto")
    h, w = 20, 28
    yy, xx = np.mgrid[0:h, 0:w]
    maps = {"Fe": (xx * 2.0 + 1).astype(np.float32), "Pb": (yy * 3.0 + 1).astype(np.float32)}
    pt = make_photo(maps, d / "photo.png", seed=5, scale=4.0)
    cube = poisson_cube(2, (h, w, 64), lam=5.0)
    ds = convert(write_pair(d, cube, "s"), d / "s.datastack", calibrate=False)
    ds.write_layer("element_maps", {"maps": np.stack([maps["Fe"], maps["Pb"]]),
                                    "chi2": np.zeros((h, w), np.float32)},
                   {"elements": ["Fe", "Pb"], "method": "window"})
    write_registration(ds, Registration(matrix=pt.matrix, method="points", photo_path=pt.path,
                                        photo_sha256=sha256_file(pt.path), photo_size=pt.size,
                                        scan_shape=(h, w), quality="good", scale=pt.scale))
    return ds, cube, pt


def test_report_photo_overlay_controls(browser, registered, tmp_path):  # noqa: F811
    ds, _, _ = registered
    path = write_report(ds, tmp_path / "r.html")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    sec = page.locator("#photo-overlay")
    assert sec.is_visible()
    assert page.evaluate("() => [...document.querySelectorAll('#photo-overlay img')]"
                         ".every(i => i.complete && i.naturalWidth > 0)")
    page.select_option("#photo-overlay .ov-el", "1")
    shown = page.evaluate("() => [...document.querySelectorAll('.ov-map')].map(i => i.style.display)")
    assert shown == ["none", ""]
    page.locator("#photo-overlay .ov-opacity").fill("20")
    assert page.evaluate("() => document.querySelector('.ov-map[data-i=\"1\"]').style.opacity") == "0.2"
    assert not errors


def test_viewer_click_on_photo_shows_the_pixel_spectrum(browser, registered):  # noqa: F811
    from maxrf.viewer import make_server

    ds, cube, pt = registered
    srv = make_server(ds, port=0)
    srv.start_thread()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(srv.url)
        page.wait_for_function("() => window.maxrf && window.maxrf.ready", timeout=20000)
        img = page.locator("#photo-img")
        img.wait_for()
        page.wait_for_function("() => document.getElementById('photo-img').naturalWidth > 0")
        box = img.bounding_box()
        reg = page.evaluate("() => window.maxrf.registration")
        for row, col in [(3, 4), (15, 22)]:
            x, y = apply(pt.matrix, np.array([[col, row]], dtype=float))[0] / reg["factor"]
            page.mouse.click(box["x"] + (x + 0.5) * box["width"] / reg["display_width"],
                             box["y"] + (y + 0.5) * box["height"] / reg["display_height"])
            page.wait_for_function(
                f"() => (window.maxrf.lastSpectrum || {{}}).row === {row} "
                f"&& window.maxrf.lastSpectrum.col === {col}", timeout=10000)
            counts = page.evaluate("() => window.maxrf.lastSpectrum.counts")
            np.testing.assert_array_equal(counts, cube[row, col])
    finally:
        srv.shutdown()
        srv.server_close()
