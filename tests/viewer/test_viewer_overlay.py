"""Viewer endpoints of the registered photograph: photo, overlays, photo click -> scan pixel."""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.io.photo import sha256_file
from maxrf.registration.homography import apply
from maxrf.registration.result import Registration, write_registration
from maxrf.synth_photo import make_photo
from maxrf.viewer import make_server

from conftest import poisson_cube, write_pair


def _get(server, path):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("vo")
    h, w = 18, 26
    yy, xx = np.mgrid[0:h, 0:w]
    maps = {"Fe": (xx * 2.0).astype(np.float32)}
    pt = make_photo(maps, d / "photo.png", seed=8, scale=3.0)
    ds = convert(write_pair(d, poisson_cube(0, (h, w, 32)), "s"), d / "s.datastack", calibrate=False)
    ds.write_layer("element_maps", {"maps": maps["Fe"][None], "chi2": np.zeros((h, w), np.float32)},
                   {"elements": ["Fe"], "method": "window"})
    write_registration(ds, Registration(matrix=pt.matrix, method="points", photo_path=pt.path,
                                        photo_sha256=sha256_file(pt.path), photo_size=pt.size,
                                        scan_shape=(h, w), quality="good", scale=pt.scale))
    bare = convert(write_pair(d, poisson_cube(1, (5, 6, 16)), "b"), d / "b.datastack", calibrate=False)
    servers = [make_server(x, port=0) for x in (ds, bare)]
    for s in servers:
        s.start_thread()
    yield servers, pt
    for s in servers:
        s.shutdown()
        s.server_close()


def test_photo_and_overlay_are_served(served):
    (srv, _), pt = served
    code, ctype, body = _get(srv, "/api/registration")
    reg = json.loads(body)
    assert code == 200 and reg["registered"] and reg["photo_readable"]
    assert (reg["display_width"], reg["display_height"]) == pt.size  # small photo: factor 1
    code, ctype, body = _get(srv, "/api/photo")
    assert code == 200 and ctype == "image/jpeg" and body[:2] == b"\xff\xd8"
    code, ctype, body = _get(srv, "/api/photo_overlay?name=Fe")
    assert code == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
    assert _get(srv, "/api/photo_overlay?name=Nope")[0] == 404


@pytest.mark.parametrize("row,col", [(0, 0), (7, 11), (17, 25)])
def test_click_on_photo_gives_the_scan_pixel_beneath(served, row, col):
    (srv, _), pt = served
    x, y = apply(pt.matrix, np.array([[col + 0.2, row - 0.3]]))[0]  # inside that pixel
    code, _, body = _get(srv, f"/api/photo_pixel?x={x:.3f}&y={y:.3f}")
    p = json.loads(body)
    assert code == 200 and p["inside"] and (p["row"], p["col"]) == (row, col)
    outside = json.loads(_get(srv, "/api/photo_pixel?x=0&y=0")[2])
    assert not outside["inside"]


def test_unregistered_scan_says_so(served):
    (_, bare), _ = served
    assert json.loads(_get(bare, "/api/registration")[2]) == {"registered": False}
    assert _get(bare, "/api/photo")[0] == 404
    assert _get(bare, "/api/photo_pixel?x=1&y=1")[0] == 404
    assert _get(bare, "/api/photo_pixel?x=abc&y=1")[0] == 400
