"""The report and the viewer in a real headless browser (Debian's chromium + Playwright).

Report: every map and spectrum is on the page and every image decodes, with no network.
Viewer: a real click on a map pixel shows that pixel's spectrum (compared with the cube in
numpy), a drag across the spectrum maps that energy window (compared with a numpy sum).
Screenshots go to tests/artifacts/ (the README's docs/img/ shots come from the real demo,
made by docs/screenshots.py; tests never write tracked files).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from report_stacks import make_stack

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api  # installed with the test extras: a missing one fails

    if not os.path.exists(CHROMIUM):  # `make test` installs it (make browser): missing is a failure
        pytest.fail(f"no chromium at {CHROMIUM}: run `make browser` (Debian's chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_stack(tmp_path_factory.mktemp("browser"), h=48, w=64, c=1024)


class PageLog:
    """Console errors, page errors and every URL requested by a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.urls.append(r.url))


def save_shot(page, name: str, docs: bool = False, **kwargs) -> Path:
    """Save a screenshot as a test artifact (``docs`` is kept for the call sites' intent)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), **kwargs)
    return path


# --------------------------------------------------------------------------- report
def test_report_in_the_browser(browser, data):
    from maxrf.report import write_report

    ds = data[0]
    path = write_report(ds, ds.path.parent / "report.html")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = PageLog(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    got = page.evaluate("""() => {
        const imgs = [...document.images];
        const maps = [...document.querySelectorAll('img[data-map]')];
        return {
            images: imgs.length,
            decoded: imgs.filter((i) => i.complete && i.naturalWidth > 0).length,
            maps: maps.map((i) => [i.dataset.map, i.dataset.layer, i.dataset.view,
                                   i.naturalWidth, i.naturalHeight]),
            spectra: [...document.querySelectorAll('svg[data-spectrum]')].map((s) => [s.dataset.spectrum,
                      s.getBoundingClientRect().width, s.querySelectorAll('polyline').length]),
            hotmax: document.querySelectorAll('[data-hotmax]').length,
            colorbars: document.querySelectorAll('svg[data-colorbar]').length,
            speckleRows: document.querySelectorAll('table[data-speckles="table"] tbody tr').length,
            states: [...document.querySelectorAll('[data-layer-status]')].map((r) => r.dataset.state),
            title: document.title,
        };
    }""")
    elements = ds.read("element_maps").attrs["elements"]
    labels = ds.read("peak_maps").attrs["labels"]
    expected = [(el, "element_maps", v) for el in elements for v in ("linear", "equalised")]
    expected += [(f"peak:{lab}", "peak_maps", v) for lab in labels for v in ("linear", "equalised")]
    assert sorted(tuple(m[:3]) for m in got["maps"]) == sorted(expected)
    assert all(m[3:] == [64, 48] for m in got["maps"])  # one image pixel per scan pixel
    assert got["images"] == got["decoded"] > len(expected)
    assert sorted(s[0] for s in got["spectra"]) == ["max", "sum"]
    assert all(s[1] > 300 and s[2] == 1 for s in got["spectra"])
    assert got["hotmax"] == ds.read("hotmax")["spectra"].shape[0]
    assert got["colorbars"] == len(expected) + 1
    assert got["speckleRows"] == len(ds.read("speckles").attrs["table"])
    assert got["states"] == ["computed"] * 7
    assert got["title"] == "MA-XRF report: scan"
    assert all(u.startswith(("file://", "data:")) for u in log.urls), log.urls  # nothing from the network
    assert log.errors == []
    save_shot(page, "report_full.png", docs=False, full_page=True)
    # README picture: the element map gallery (below the sticky navigation bar)
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.evaluate("""() => {
        const nav = document.querySelector('nav').getBoundingClientRect().height;
        const top = document.getElementById('element-maps').getBoundingClientRect().top + window.scrollY;
        window.scrollTo(0, top - nav - 8);
    }""")
    save_shot(page, "report_docs.png", docs=True)
    page.close()


def test_report_without_layers_in_the_browser(browser, tmp_path):
    from maxrf.report import write_report

    ds, _cube, _maps = make_stack(tmp_path, h=8, w=10, c=128, layers=())
    path = write_report(ds, tmp_path / "bare.html")
    page = browser.new_page()
    log = PageLog(page)
    page.goto(path.as_uri())
    missing = page.evaluate("() => [...document.querySelectorAll('[data-missing]')].map((e) => e.innerText)")
    assert len(missing) == 7 and all("not computed" in m and "run maxrf" in m for m in missing)
    assert page.evaluate("() => document.querySelectorAll('svg[data-spectrum]').length") == 2
    assert log.errors == []
    save_shot(page, "report_bare.png", docs=False, full_page=True)
    page.close()


# --------------------------------------------------------------------------- viewer
@pytest.fixture(scope="module")
def viewer(data):
    from maxrf.viewer import make_server

    srv = make_server(data[0], port=0)
    srv.start_thread()
    yield srv
    srv.shutdown()
    srv.server_close()


def canvas_png(page, canvas_id: str) -> str:
    return page.evaluate(f"() => document.getElementById('{canvas_id}').toDataURL()")


def test_viewer_click_and_drag(browser, data, viewer):
    ds, cube, _maps = data
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    log = PageLog(page)
    page.goto(viewer.url)
    page.wait_for_function("() => window.maxrf && window.maxrf.ready", timeout=20000)
    assert page.evaluate("() => window.maxrf.currentMap.key") == "Ca"
    assert page.title() == "maxrf viewer — scan"
    # the segmentation overlay is loaded, with every stored particle, and can be switched off
    seg = page.evaluate("() => window.maxrf.segmentation")
    assert seg == {"element": "Cu", "particles": len(ds.read("segmentation").attrs["table"])}
    with_overlay = canvas_png(page, "map-canvas")
    page.uncheck("#show-seg")
    assert canvas_png(page, "map-canvas") != with_overlay
    page.check("#show-seg")

    # click one pixel: the spectrum shown is that pixel's spectrum
    before = canvas_png(page, "spectrum-canvas")
    row, col = 13, 41
    pt = page.evaluate(f"() => window.maxrf.pixelToClient({row}, {col})")
    page.mouse.click(pt["x"], pt["y"])
    page.wait_for_function(
        f"() => (window.maxrf.lastSpectrum || {{}}).row === {row} && window.maxrf.lastSpectrum.col === {col}",
        timeout=10000,
    )
    counts = page.evaluate("() => window.maxrf.lastSpectrum.counts")
    np.testing.assert_array_equal(counts, cube[row, col])
    assert page.inner_text("#spectrum-title") == f"Pixel row {row}, column {col}"
    assert canvas_png(page, "spectrum-canvas") != before

    # drag a rectangle on the map: the region's mean spectrum
    a = page.evaluate("() => window.maxrf.pixelToClient(5, 6)")
    b = page.evaluate("() => window.maxrf.pixelToClient(9, 15)")
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(b["x"], b["y"], steps=6)
    page.mouse.up()
    page.wait_for_function("() => window.maxrf.lastSpectrum.kind === 'region'", timeout=10000)
    s = page.evaluate("() => window.maxrf.lastSpectrum")
    assert (s["r0"], s["c0"], s["r1"], s["c1"]) == (5, 6, 10, 16)
    np.testing.assert_allclose(s["counts"], cube[5:10, 6:16].mean(axis=(0, 1)))

    # drag across the spectrum from 6.2 to 6.6 keV: the map is that window's counts
    map_before = canvas_png(page, "map-canvas")
    lo = page.evaluate("() => window.maxrf.energyToClient(6.2)")
    hi = page.evaluate("() => window.maxrf.energyToClient(6.6)")
    page.mouse.move(lo["x"], lo["y"])
    page.mouse.down()
    page.mouse.move(hi["x"], hi["y"], steps=8)
    page.mouse.up()
    page.wait_for_function("() => window.maxrf.currentMap.layer === 'window'", timeout=20000)
    m = page.evaluate(
        "() => { const m = window.maxrf.currentMap; return {lo: m.lo_channel, hi: m.hi_channel, "
        "shape: m.shape, values: Array.from(m.values)}; }"
    )
    e = ds.energies
    assert abs(e[m["lo"]] - 6.2) < 0.1 and abs(e[m["hi"]] - 6.6) < 0.1  # within a few screen pixels
    np.testing.assert_array_equal(
        np.reshape(m["values"], m["shape"]), cube[..., m["lo"] : m["hi"] + 1].sum(axis=2)
    )
    assert canvas_png(page, "map-canvas") != map_before
    assert page.inner_text("#map-title").startswith("Energy window")

    # the same through the JS hook, in keV
    page.evaluate("() => window.maxrf.selectWindow(8.0, 8.1)")
    page.wait_for_function("() => window.maxrf.currentMap.lo_channel !== " + str(m["lo"]), timeout=20000)
    m2 = page.evaluate(
        "() => { const m = window.maxrf.currentMap; return {lo: m.lo_channel, hi: m.hi_channel, "
        "values: Array.from(m.values)}; }"
    )
    lo2, hi2 = int(np.searchsorted(e, 8.0)), int(np.searchsorted(e, 8.1, "right")) - 1
    assert (m2["lo"], m2["hi"]) == (lo2, hi2)
    np.testing.assert_array_equal(np.reshape(m2["values"], (48, 64)), cube[..., lo2 : hi2 + 1].sum(axis=2))

    # pick an element map from the menu, switch to equalised contrast
    page.select_option("#map-select", "Fe")
    page.wait_for_function("() => window.maxrf.currentMap.key === 'Fe'", timeout=10000)
    fe = np.reshape(page.evaluate("() => Array.from(window.maxrf.currentMap.values)"), (48, 64))
    np.testing.assert_array_equal(fe, ds.read("element_maps")["maps"][1])
    page.select_option("#contrast", "equalised")
    page.select_option("#contrast", "linear")

    # README picture: the Fe map with a pixel selected and its spectrum, zoomed on 2-16 keV
    pt = page.evaluate("() => window.maxrf.pixelToClient(16, 19)")
    page.mouse.click(pt["x"], pt["y"])
    page.wait_for_function("() => window.maxrf.lastSpectrum.row === 16", timeout=10000)
    c = page.evaluate("() => window.maxrf.energyToClient(9)")
    for _ in range(4):
        page.mouse.move(c["x"], c["y"])
        page.mouse.wheel(0, -100)
    page.mouse.move(5, 5)
    page.wait_for_timeout(200)
    save_shot(page, "viewer_docs.png", docs=True)
    assert log.errors == []
    assert all(u.startswith(viewer.url) for u in log.urls), log.urls  # only our own server
    page.close()


def test_viewer_without_layers(browser, tmp_path):
    from maxrf.viewer import make_server

    ds, cube, _maps = make_stack(tmp_path, h=6, w=9, c=64, layers=())
    srv = make_server(ds, port=0)
    srv.start_thread()
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        log = PageLog(page)
        page.goto(srv.url)
        page.wait_for_function("() => window.maxrf && window.maxrf.ready", timeout=20000)
        notice = page.inner_text("#notices")
        assert "maxrf maps" in notice and "maxrf calibrate" in notice
        assert page.is_visible("#map-empty")
        page.evaluate("() => window.maxrf.selectWindow(10, 20)")  # channels: no calibration
        page.wait_for_function("() => window.maxrf.currentMap && window.maxrf.currentMap.layer === 'window'")
        values = page.evaluate("() => Array.from(window.maxrf.currentMap.values)")
        np.testing.assert_array_equal(np.reshape(values, (6, 9)), cube[..., 10:21].sum(axis=2))
        assert not page.is_visible("#map-empty")
        pt = page.evaluate("() => window.maxrf.pixelToClient(5, 8)")
        page.mouse.click(pt["x"], pt["y"])
        page.wait_for_function("() => (window.maxrf.lastSpectrum || {}).row === 5")
        np.testing.assert_array_equal(page.evaluate("() => window.maxrf.lastSpectrum.counts"), cube[5, 8])
        save_shot(page, "viewer_bare.png", docs=False)
        assert log.errors == []
        page.close()
    finally:
        srv.shutdown()
        srv.server_close()
