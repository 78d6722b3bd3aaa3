"""The viewer's colour-map and colour-limit controls, in a real headless browser."""

from __future__ import annotations

# the shared fixtures, and the browser marks (fail without chromium) of test_browser
from test_browser import browser, data, pytestmark, viewer  # noqa: F401


def _grey_share(page) -> float:
    """Share of drawn map pixels with r == g == b."""
    return page.evaluate(
        """() => { const c = document.getElementById('map-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let grey = 0, n = 0;
        for (let i = 0; i < d.length; i += 4) { if (d[i + 3] === 0) continue; n++;
          if (d[i] === d[i + 1] && d[i + 1] === d[i + 2]) grey++; }
        return n ? grey / n : 0; }""")


def test_viewer_colour_map_and_limits(browser, data, viewer):  # noqa: F811
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(viewer.url)
    page.wait_for_function("() => window.maxrf && window.maxrf.ready", timeout=20000)
    page.select_option("#map-select", "Fe")
    page.wait_for_function("() => window.maxrf.currentMap.key === 'Fe'", timeout=10000)
    page.wait_for_timeout(200)
    assert _grey_share(page) < 0.5  # the element's colours
    page.select_option("#cmap", "gray")
    page.wait_for_timeout(200)
    assert _grey_share(page) > 0.95
    full = page.evaluate("() => document.getElementById('map-canvas').toDataURL()")
    page.select_option("#limits", "1")
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.getElementById('map-canvas').toDataURL()") != full
    page.close()
