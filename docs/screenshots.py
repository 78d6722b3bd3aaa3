"""Take the README screenshots from the real demo output (``python docs/screenshots.py DIR``).

Run ``maxrf demo DIR`` first. Uses Debian's chromium through Playwright (no browser download).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(folder: str = "demo-output") -> None:
    from playwright.sync_api import sync_playwright

    from maxrf import DataStack
    from maxrf.viewer import make_server

    folder = Path(folder).resolve()
    out = Path(__file__).resolve().parent / "img"
    out.mkdir(exist_ok=True)
    ds = DataStack(folder / "demo-scan.datastack")
    server = make_server(ds, port=0)
    server.start_thread()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto((folder / "report.html").as_uri())
        page.screenshot(path=str(out / "report.png"))
        page.locator("#element-maps, [id*=element]").first.scroll_into_view_if_needed()
        page.screenshot(path=str(out / "report-maps.png"))
        page.goto(server.url)
        page.wait_for_timeout(1500)
        canvas = page.locator("canvas").first
        box = canvas.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "viewer.png"))
        browser.close()
    server.shutdown()
    print(f"wrote {out}/report.png, report-maps.png, viewer.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
