"""The viewer's HTTP API (maxrf.viewer): correct data, and hostile input answered with 4xx JSON.

The server runs in a thread on a free port over a small datastack stored in many small
chunks (so regions cross chunk borders); answers are compared with numpy on the cube.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxrf.store import delete_layer
from report_stacks import make_stack

# the fault benchmark runs the fuzzers with more examples (benchmarks/bench_faults.py)
_SCALE = float(os.environ.get("MAXRF_HYPOTHESIS_SCALE", "1"))


def _examples(n: int) -> int:
    return max(1, round(n * _SCALE))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    old = os.environ.get("MAXRF_BUDGET_MB")
    os.environ["MAXRF_BUDGET_MB"] = "0.25"  # 4 x 4 pixel chunks
    try:
        ds, cube, maps = make_stack(tmp_path_factory.mktemp("viewer"), h=24, w=32, c=512)
    finally:
        if old is None:
            os.environ.pop("MAXRF_BUDGET_MB", None)
        else:
            os.environ["MAXRF_BUDGET_MB"] = old
    assert ds.chunks[0] < 24 and ds.chunks[1] < 32
    return ds, cube, maps


def start(ds):
    from maxrf.viewer import make_server

    server = make_server(ds, port=0)
    server.start_thread()
    return server


@pytest.fixture(scope="module")
def server(stack):
    srv = start(stack[0])
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A datastack with no layers at all (no calibration either)."""
    ds, cube, _maps = make_stack(tmp_path_factory.mktemp("bare"), h=5, w=6, c=64, layers=())
    srv = start(ds)
    yield srv, ds, cube
    srv.shutdown()
    srv.server_close()


def request(server, path: str, method: str = "GET", headers: dict | None = None):
    """(status, headers, body bytes) of one raw request (the path is sent as given)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(
            method, path, skip_host=bool(headers and "Host" in headers), skip_accept_encoding=True
        )
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def get_json(server, path: str, status: int = 200):
    code, headers, body = request(server, path)
    assert code == status, (path, code, body[:300])
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(body)


def decode(m) -> np.ndarray:
    return np.frombuffer(base64.b64decode(m["data"]), dtype="<f4").reshape(m["shape"])


def raw_exchange(server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def alive(server) -> None:
    assert get_json(server, "/api/info")["shape"]


# --------------------------------------------------------------------------- correct answers
def test_info(server, stack):
    ds = stack[0]
    info = get_json(server, "/api/info")
    assert info["shape"] == list(ds.shape)
    assert info["unit"] == "keV"
    assert {layer["name"]: layer["state"] for layer in info["layers"]} == {
        n: "computed"
        for n in ("calibration", "hotmax", "identification", "peak_maps", "element_maps", "speckles",
                  "segmentation")
    }
    keys = [m["key"] for m in info["maps"]]
    assert keys == ["Ca", "Fe", "Pb", "Cu", "peak:Fe Ka", "peak:Pb La", "peak:Ca Ka"]
    assert {m["element"] for m in info["markers"] if m["main"] and m["kind"] == "element"} == {
        "Ca",
        "Fe",
        "Cu",
        "Pb",
    }
    assert info["limits"]["max_region_pixels"] > 0


def test_spectra(server, stack):
    ds = stack[0]
    s = get_json(server, "/api/spectra")
    np.testing.assert_allclose(s["energies"], ds.energies)
    np.testing.assert_allclose(s["sum"], ds.sum_spectrum)
    np.testing.assert_allclose(s["max"], ds.max_spectrum)


def test_pixel_spectra_match_the_cube(server, stack):
    cube = stack[1]
    rng = np.random.default_rng(0)
    pixels = [(0, 0), (23, 31), (0, 31), (23, 0)] + [tuple(p) for p in rng.integers(0, (24, 32), (12, 2))]
    for r, c in pixels:
        s = get_json(server, f"/api/spectrum?row={r}&col={c}")
        assert (s["kind"], s["row"], s["col"], s["n_pixels"]) == ("pixel", r, c, 1)
        np.testing.assert_array_equal(s["counts"], cube[r, c])
        assert s["total"] == float(cube[r, c].sum())


def test_region_spectra_cross_chunks(server, stack):
    cube = stack[1]
    for r0, c0, r1, c1 in [(0, 0, 24, 32), (3, 5, 9, 17), (10, 10, 11, 11), (22, 1, 24, 30)]:
        s = get_json(server, f"/api/spectrum?r0={r0}&c0={c0}&r1={r1}&c1={c1}")
        assert s["kind"] == "region" and s["n_pixels"] == (r1 - r0) * (c1 - c0)
        np.testing.assert_allclose(s["counts"], cube[r0:r1, c0:c1].mean(axis=(0, 1)), rtol=1e-12)


def test_concurrent_clicks(server, stack):
    cube = stack[1]
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for r, c in rng.integers(0, (24, 32), (8, 2)):
            s = get_json(server, f"/api/spectrum?row={r}&col={c}")
            if not np.array_equal(s["counts"], cube[r, c]):
                errors.append((r, c))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_layer_maps(server, stack):
    ds = stack[0]
    em = ds.read("element_maps")
    for i, el in enumerate(em.attrs["elements"]):
        m = get_json(server, f"/api/map?name={el}")
        np.testing.assert_array_equal(decode(m), em["maps"][i])
        assert m["layer"] == "element_maps" and m["color"].startswith("#")
    pm = ds.read("peak_maps")
    m = get_json(server, "/api/map?" + urllib.parse.urlencode({"name": "peak:Pb La"}))
    np.testing.assert_array_equal(decode(m), pm["maps"][1])
    assert m["keV"] == pytest.approx(pm["peaks_keV"][1])


def test_window_maps_match_numpy(server, stack):
    ds, cube = stack[0], stack[1]
    e = ds.energies
    m = get_json(server, "/api/window?lo_keV=6.2&hi_keV=6.6")
    lo, hi = m["lo_channel"], m["hi_channel"]
    assert e[lo] >= 6.2 and e[hi] <= 6.6 and e[lo - 1] < 6.2 and e[hi + 1] > 6.6
    np.testing.assert_array_equal(decode(m), cube[..., lo : hi + 1].sum(axis=2))
    again = get_json(server, f"/api/window?lo={lo}&hi={hi}")  # same window in channels (cached)
    np.testing.assert_array_equal(decode(again), decode(m))
    one = get_json(server, "/api/window?lo_keV=6.401&hi_keV=6.402")  # narrower than a channel
    assert one["lo_channel"] == one["hi_channel"]
    np.testing.assert_array_equal(decode(one), cube[..., one["lo_channel"]])
    edge = get_json(server, "/api/window?lo_keV=-50&hi_keV=0.05")  # clipped to the axis
    assert edge["lo_channel"] == 0


def test_png_maps(server):
    for path in (
        "/api/map?name=Fe&format=png",
        "/api/map?name=Fe&format=png&view=equalised",
        "/api/window?lo=10&hi=20&format=png",
    ):
        code, headers, body = request(server, path)
        assert code == 200 and headers["Content-Type"] == "image/png"
        assert body[:8] == b"\x89PNG\r\n\x1a\n"


def test_lines(server):
    r = get_json(server, "/api/lines?element=zn")
    assert r["element"] == "Zn"
    assert r["lines"][0]["line"] == "Ka" and r["lines"][0]["keV"] == pytest.approx(8.63, abs=0.02)
    assert get_json(server, "/api/lines?element=30")["element"] == "Zn"
    get_json(server, "/api/lines?element=Xx", 400)
    get_json(server, "/api/lines?element=Fe;ls", 400)


def test_static_files_and_headers(server):
    code, headers, body = request(server, "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/static/viewer.js"' in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name in ("viewer.js", "viewer.css", "favicon.svg"):
        code, headers, body = request(server, f"/static/{name}")
        assert code == 200 and body
        text = body.decode().replace("http://www.w3.org/2000/svg", "")
        assert "http://" not in text and "https://" not in text  # no CDN, nothing remote
    code, headers, body = request(server, "/api/info", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_layers_are_reread_when_replaced(tmp_path):
    ds, _cube, maps = make_stack(tmp_path, h=5, w=6, c=64, layers=("calibration", "element_maps"))
    srv = start(ds)
    try:
        assert [m["key"] for m in get_json(srv, "/api/info")["maps"]] == list(maps)
        ds.write_layer("element_maps", {"maps": np.ones((1, 5, 6), np.float32)}, {"elements": ["Zn"]})
        assert [m["key"] for m in get_json(srv, "/api/info")["maps"]] == ["Zn"]
        get_json(srv, "/api/map?name=Fe", 404)
        delete_layer(ds.path, "element_maps")
        err = get_json(srv, "/api/map?name=Zn", 404)
        assert "not computed" in err["error"] and "maxrf maps" in err["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_missing_layers(bare):
    srv, ds, cube = bare
    info = get_json(srv, "/api/info")
    assert info["unit"] == "channel" and info["maps"] == [] and info["markers"] == []
    assert {layer["state"] for layer in info["layers"]} == {"not computed"}
    assert "maxrf maps" in get_json(srv, "/api/map?name=Fe", 404)["error"]
    assert "calibration" in get_json(srv, "/api/window?lo_keV=1&hi_keV=2", 400)["error"]
    m = get_json(srv, "/api/window?lo=3&hi=9")
    np.testing.assert_array_equal(decode(m), cube[..., 3:10].sum(axis=2))
    np.testing.assert_array_equal(get_json(srv, "/api/spectrum?row=4&col=5")["counts"], cube[4, 5])


# --------------------------------------------------------------------------- hostile input
TRAVERSALS = [
    "/../../../../etc/passwd",
    "/..",
    "/static/../../../etc/passwd",
    "/static/..%2f..%2f..%2fetc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/static/viewer.js/../../../../etc/passwd",
    "/static/..\\..\\..\\etc\\passwd",
    "/etc/passwd",
    "//etc/passwd",
    "/static//etc/passwd",
    "/static/",
    "/static/.",
    "/static/index.html%00.js",
    "/static/viewer.js%00",
    "/api/../static/viewer.js",
    "/api/__init__",
    "/api/_send",
    "/api/info/../../x",
    "/static/app.py",
    "/static/server.py",
    "/src/maxrf/store.py",
    "/maxrf.json",
    "/api/",
    "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static/..;/..;/etc/passwd",
    "/static/....//....//etc/passwd",
    "/static/\u00e9",
    "/api/info%3f",
    "/static/viewer.JS",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(server, path):
    code, headers, body = request(server, urllib.parse.quote(path, safe="/%\\.?=&;:@"))
    assert code in (400, 404), (path, code)
    assert headers["Content-Type"].startswith("application/json")
    err = json.loads(body)
    assert err["status"] == code and err["error"]
    assert b"root:" not in body
    alive(server)


@pytest.mark.parametrize("target", ["http://127.0.0.1/etc/passwd", "file:///etc/passwd", "*", "etc/passwd"])
def test_absolute_and_odd_request_targets(server, target):
    code, headers, body = request(server, target)
    assert code == 400 and json.loads(body)["error"]
    alive(server)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_other_methods(server, method):
    code, headers, body = request(server, "/api/info", method=method)
    assert code == 405 and json.loads(body)["status"] == 405
    alive(server)


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    ],
)
def test_malformed_requests(server, data):
    reply = raw_exchange(server, data)
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else None
    assert status is not None and 400 <= status < 500, reply[:200]
    head, _, body = reply.partition(b"\r\n\r\n")
    assert json.loads(body)["status"] == status
    alive(server)


def test_foreign_host_header_is_refused(server):
    code, _h, body = request(server, "/api/info", headers={"Host": "evil.example:80"})
    assert code == 403 and "localhost" in json.loads(body)["error"]
    code, _h, _b = request(server, "/api/info", headers={"Host": f"localhost:{server.port}"})
    assert code == 200


BAD_QUERIES = [
    "/api/spectrum",
    "/api/spectrum?row=1",
    "/api/spectrum?col=1",
    "/api/spectrum?row=a&col=1",
    "/api/spectrum?row=1.5&col=1",
    "/api/spectrum?row=-1&col=1",
    "/api/spectrum?row=NaN&col=1",
    "/api/spectrum?row=inf&col=0",
    "/api/spectrum?row=24&col=0",
    "/api/spectrum?row=0&col=32",
    "/api/spectrum?row=99999999999999999999&col=0",
    "/api/spectrum?row=0x10&col=0",
    "/api/spectrum?row=1e3&col=0",
    "/api/spectrum?row=&col=",
    "/api/spectrum?row=1&row=2&col=1",
    "/api/spectrum?row=1&col=1&evil=1",
    "/api/spectrum?row=%201&col=1",
    "/api/spectrum?row=%ff&col=1",
    "/api/spectrum?row=1&&col=1",
    "/api/spectrum?r0=0&c0=0&r1=0&c1=5",
    "/api/spectrum?r0=5&c0=0&r1=2&c1=5",
    "/api/spectrum?r0=0&c0=0&r1=25&c1=5",
    "/api/spectrum?r0=0&c0=0&r1=5",
    "/api/spectrum?row=1&col=1&r0=0",
    "/api/window",
    "/api/window?lo_keV=nan&hi_keV=2",
    "/api/window?lo_keV=1&hi_keV=inf",
    "/api/window?lo_keV=-inf&hi_keV=2",
    "/api/window?lo_keV=3&hi_keV=2",
    "/api/window?lo_keV=2&hi_keV=2",
    "/api/window?lo_keV=100&hi_keV=200",
    "/api/window?lo_keV=-9&hi_keV=-8",
    "/api/window?lo_keV=1e999&hi_keV=2",
    "/api/window?lo=5&hi=4",
    "/api/window?lo=0&hi=512",
    "/api/window?lo=0&hi_keV=3",
    "/api/window?lo_keV=1&hi_keV=2&format=gif",
    "/api/window?lo_keV=1&hi_keV=2&view=log",
    "/api/window?lo_keV=1,2&hi_keV=3",
    "/api/window?lo_keV=0x1p3&hi_keV=30",
    "/api/map",
    "/api/map?name=",
    "/api/map?name=Fe&extra=1",
    "/api/map?name=Fe&format=../../etc/passwd",
    "/api/info?x=1",
    "/api/spectra?x",
    "/api/lines",
    "/api/lines?element=",
    "/api/lines?element=" + "A" * 100,
    "/api/spectrum?" + "&".join(f"p{i}=1" for i in range(40)),
    "/api/spectrum?row=1&col=" + "9" * 3000,
    "/?v=1&v=2",
    "/static/viewer.js?x=%zz",
]


@pytest.mark.parametrize("path", BAD_QUERIES)
def test_malformed_queries(server, path):
    code, headers, body = request(server, path)
    assert code == 400, (path, code, body[:200])
    err = json.loads(body)
    assert err["status"] == 400 and isinstance(err["error"], str) and err["error"]
    alive(server)


def test_unknown_map_is_404(server):
    for name in ("Xx", "peak:nothing", "../../etc/passwd", "window:1:2"):
        err = get_json(server, "/api/map?" + urllib.parse.urlencode({"name": name}), 404)
        assert "no map" in err["error"]


def test_region_size_is_capped(server):
    app = server.app
    old = app.max_region_pixels
    app.max_region_pixels = 50
    try:
        err = get_json(server, "/api/spectrum?r0=0&c0=0&r1=10&c1=10", 400)
        assert "limit of 50" in err["error"]
        get_json(server, "/api/spectrum?r0=0&c0=0&r1=5&c1=10")
    finally:
        app.max_region_pixels = old


NAMES = st.sampled_from(
    [
        "row",
        "col",
        "r0",
        "c0",
        "r1",
        "c1",
        "lo_keV",
        "hi_keV",
        "lo",
        "hi",
        "name",
        "format",
        "view",
        "element",
        "",
        "ROW",
        "row ",
        "x",
    ]
)
VALUES = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "1e308",
            "1e-320",
            "",
            " ",
            "0x1f",
            "1_0",
            "٣",
            "Fe",
            "peak:Fe Ka",
            "png",
            "json",
            "equalised",
            "../..",
            "%00",
            "\x00",
            "%",
            "%%",
            "+1",
        ]
    ),
    st.text(max_size=12),
)
ENDPOINTS = st.sampled_from(
    ["/api/spectrum", "/api/window", "/api/map", "/api/lines", "/api/info", "/api/spectra"]
)


def _encode(pairs, raw: bool) -> str:
    if raw:  # as typed: no percent-encoding at all (odd characters go through as they are)
        return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass").decode("latin-1")
    return urllib.parse.urlencode(pairs)


@settings(max_examples=_examples(120), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=ENDPOINTS, pairs=st.lists(st.tuples(NAMES, VALUES), max_size=5), raw=st.booleans())
def test_fuzzed_queries_never_fail_the_server(server, endpoint, pairs, raw):
    query = _encode(pairs, raw)
    path = endpoint + ("?" + query if query else "")
    if any(ord(ch) <= 32 or ord(ch) >= 127 for ch in path):  # what http.client refuses to send
        path = urllib.parse.quote(path, safe="/?&=%")
    code, headers, body = request(server, path)
    assert code in (200, 400, 404), (path, code, body[:200])
    if headers.get("Content-Type", "").startswith("application/json"):
        doc = json.loads(body)
        assert (code == 200) != ("error" in doc)
    else:
        assert code == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"


@settings(max_examples=_examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.lists(
        st.sampled_from(list("/.%2eEfF5cC\\:~ab") + ["..", "%2e", "%2f", "static/", "etc", "viewer.js"]),
        max_size=16,
    ).map("".join)
)
def test_fuzzed_paths_never_escape(server, path):
    code, headers, body = request(server, "/" + urllib.parse.quote(path, safe="/%\\.:~"))
    assert code in (200, 400, 404), (path, code)
    if code == 200:  # only the page, the allow-listed files, or (none here) API answers
        assert body == server.static["index.html"] or body in server.static.values()


def test_cli_view_reports_a_busy_port(stack, capsys):
    from maxrf.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["view", str(stack[0].path), "--port", str(port)]) == 1
    assert "in use" in capsys.readouterr().err


def test_make_server_validates(stack):
    from maxrf.errors import ParameterError
    from maxrf.viewer import make_server

    for port in (-1, 70000, "80", True):
        with pytest.raises(ParameterError):
            make_server(stack[0], port=port)


def test_serve_until_interrupted(stack, monkeypatch, capsys):
    """serve() prints the URL, runs, and returns cleanly on Ctrl-C."""
    from maxrf.viewer import server as server_mod

    def interrupt(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(server_mod.ViewerServer, "serve_forever", interrupt)
    t0 = time.perf_counter()
    server_mod.serve(stack[0].path, port=0)
    assert time.perf_counter() - t0 < 10
    assert "http://127.0.0.1:" in capsys.readouterr().out


def test_float_cube_with_nan_and_nan_attributes(tmp_path):
    """NaN in the data or in stored attributes is sent as null, never a 500."""
    from maxrf.convert import convert

    cube = np.random.default_rng(0).random((4, 5, 32)).astype("<f4")
    cube[1, 2, 3] = np.nan
    (tmp_path / "f.rpl").write_text(
        "key\tvalue\nwidth\t5\nheight\t4\ndepth\t32\noffset\t0\n"
        "data-length\t4\ndata-type\tfloat\nbyte-order\tlittle-endian\n"
        "record-by\tvector\n"
    )
    cube.tofile(tmp_path / "f.raw")
    ds = convert(tmp_path / "f.rpl", tmp_path / "f.datastack", calibrate=False)
    ds.write_layer(
        "calibration",
        {"energies": np.arange(32) * 0.5},
        {"gain_keV": 0.5, "offset_keV": 0.0, "method": "manual", "tube_kv": float("nan"), "peaks": []},
    )
    srv = start(ds)
    try:
        cal = get_json(srv, "/api/info")["calibration"]
        assert cal["gain_keV"] == 0.5 and cal["tube_kv"] is None
        assert get_json(srv, "/api/lines?element=Fe")["element"] == "Fe"
        s = get_json(srv, "/api/spectrum?row=1&col=2")
        assert s["counts"][3] is None and s["counts"][4] == pytest.approx(float(cube[1, 2, 4]))
        r = get_json(srv, "/api/spectrum?r0=0&c0=0&r1=4&c1=5")
        assert r["counts"][3] is None
        get_json(srv, "/api/spectra")
        m = get_json(srv, "/api/window?lo=2&hi=4")
        assert np.isnan(decode(m)[1, 2]) and m["max"] is not None
    finally:
        srv.shutdown()
        srv.server_close()
