"""The viewer's HTTP server: Python's ThreadingHTTPServer, a fixed set of routes.

Routes (GET and HEAD only; anything else is 405)::

    /                      the viewer page (static/index.html)
    /static/NAME           one of the files in STATIC, read from the package at start-up
    /api/info              scan, layer states, maps, line markers, limits
    /api/spectra           energies, sum (mean per pixel) and max spectra
    /api/spectrum?row=&col=              one pixel's spectrum
    /api/spectrum?r0=&c0=&r1=&c1=        a region's mean spectrum (end exclusive, capped)
    /api/map?name=KEY[&format=json|png][&view=linear|equalised]    an element or peak map
    /api/window?lo_keV=&hi_keV=[...]     an energy-window map (or lo=&hi= in channels)
    /api/lines?element=Zn                main lines of an element
    /api/segmentation      classes (background / strokes / particles) and the particle table
    /api/registration, /api/photo, /api/photo_overlay?name=, /api/photo_pixel?x=&y=  (overlay.py)

Safety: no URL ever reaches the file system. Static files are an allow-list loaded into
memory when the server starts; a path with ``..``, ``%``, a backslash, a NUL or ``//`` is
refused (400); any other unknown path is 404. Parameters are parsed strictly (unknown,
repeated, non-numeric, NaN or infinite values, out-of-range pixels and oversized regions are
400 with a JSON error naming the parameter). When bound to a loopback address the Host
header must name the loopback too (a defence against DNS rebinding). Every error is a JSON
body ``{"error": message, "status": code}``; the server keeps running.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import socket
import sys
import threading
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import numpy as np

from maxrf.errors import LayerMissingError, MaxrfError, ParameterError
from maxrf.types import DataStackLike
from maxrf.viewer.app import NotFoundError, RequestError, ViewerApp, check_params, encode_map, get_choice

#: static files served, name -> content type (nothing else can be read through a URL)
STATIC: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

MAX_QUERY = 2048

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def load_static() -> dict[str, bytes]:
    """The allow-listed static files, read from the package."""
    root = resources.files("maxrf.viewer").joinpath("static")
    return {name: root.joinpath(name).read_bytes() for name in STATIC}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one :class:`ViewerApp`.

    Attributes
    ----------
    app : ViewerApp
    url : str
        ``http://host:port/`` of the viewer.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, app: ViewerApp, host: str = "127.0.0.1", port: int = 8000, *, verbose: bool = False):
        self.app = app
        self.static = load_static()
        self.verbose = verbose
        self.host = host
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.loopback_only = is_loopback(host)
        super().__init__((host.strip("[]"), port), ViewerHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host.strip('[]')}]"
        return f"http://{host}:{self.port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops its connection (closed tab, reload) is logged in one line,
        not as a traceback; any other error keeps the standard report."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            host = client_address[0] if isinstance(client_address, tuple) else client_address
            sys.stderr.write(f"maxrf viewer: connection from {host} dropped "
                             f"({type(exc).__name__})\n")
            return
        super().handle_error(request, client_address)

    def start_thread(self) -> threading.Thread:
        """Serve in a daemon thread (tests, notebooks); stop with ``shutdown()``."""
        thread = threading.Thread(target=self.serve_forever, name="maxrf-viewer", daemon=True)
        thread.start()
        return thread


class ViewerHandler(BaseHTTPRequestHandler):
    """Routes one request; every answer has a Content-Length (HTTP/1.1 keep-alive)."""

    server: ViewerServer
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle (keep-alive) connection may hold its thread
    server_version = "maxrf-viewer"
    sys_version = ""
    error_content_type = "application/json"

    # ----------------------------------------------------------------- plumbing
    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """JSON errors, also for what http.server rejects itself (bad request line, 414...)."""
        if self.request_version == "HTTP/0.9":  # unparsable request line: still send a status line
            self.request_version = "HTTP/1.0"
        if code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:  # the client's fault: a 4xx like the rest
            code, message = 400, f"unsupported HTTP version ({message or ''}); use HTTP/1.1"
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self._send_json({"error": message or explain or phrase, "status": code}, code)

    def _send(self, body: bytes, status: int, content_type: str, *, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        if status >= 400 and status != 404:
            self.close_connection = True
            self.send_header("Connection", "close")
        # headers and body in one write: two small writes on a keep-alive connection meet
        # the peer's delayed ACK (Nagle) and cost ~40 ms per answer
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        try:
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_json(self, obj: Any, status: int = 200) -> None:
        try:
            text = json.dumps(obj, allow_nan=False, separators=(",", ":"), default=_json_default)
        except ValueError:  # NaN or infinity somewhere (e.g. in stored attributes): null them
            text = json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"), default=_json_default)
        body = text.encode()
        self._send(body, status, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._send_json({"error": message, "status": status}, status)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method: 405, not http.server's 501
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self.send_response(405)
        body = json.dumps(
            {"error": f"method {self.command[:20]} not allowed; use GET", "status": 405}
        ).encode()
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    # ----------------------------------------------------------------- routing
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        try:
            self._route()
        except (RequestError, ParameterError) as exc:
            self._error(400, str(exc))
        except (NotFoundError, LayerMissingError) as exc:
            self._error(404, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except MaxrfError as exc:  # e.g. a corrupt chunk: the data's fault, said plainly
            self._error(500, str(exc))
        except Exception as exc:  # never kill the server; say what happened
            traceback.print_exc(file=sys.stderr)
            self._error(500, f"internal error ({type(exc).__name__}); see the server's output")

    def _check_host(self) -> None:
        if not self.server.loopback_only:
            return
        host = self.headers.get("Host")
        if host is None:
            return
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if not is_loopback(name):
            raise _ForbiddenError(f"Host {host[:60]!r} refused: this viewer only answers to localhost")

    def _route(self) -> None:
        raw = self.path
        if not raw.startswith("/") or raw.startswith("//"):
            raise RequestError("request an absolute path such as /api/info")
        path, _sep, query = raw.partition("?")
        path = path.split("#", 1)[0]
        if any(bad in path for bad in ("..", "%", "\\", "\x00", "//")):
            raise RequestError("path not allowed")
        try:
            self._check_host()
        except _ForbiddenError as exc:
            self._error(403, str(exc))
            return
        if path in ("/", "/index.html"):
            return self._static("index.html", query)
        if path == "/favicon.ico":
            return self._static("favicon.svg", "")
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            if name not in STATIC:
                raise NotFoundError(f"no static file {name[:60]!r}")
            return self._static(name, query)
        if path.startswith("/api/"):
            endpoint = path[len("/api/") :]
            handler = getattr(self, f"_api_{endpoint}", None) if endpoint.isidentifier() else None
            if handler is None:
                raise NotFoundError(f"no API endpoint {path[:60]!r}")
            return handler(parse_query(query))
        raise NotFoundError(f"nothing at {path[:80]!r}")

    def _static(self, name: str, query: str) -> None:
        if query:
            check_params(parse_query(query), {"v"})
        self._send(self.server.static[name], 200, STATIC[name], cache="no-cache")

    # ----------------------------------------------------------------- API
    def _api_info(self, params: dict[str, str]) -> None:
        check_params(params, set())
        self._send_json(self.server.app.info())

    def _api_segmentation(self, params: dict[str, str]) -> None:
        check_params(params, set())
        self._send_json(self.server.app.segmentation())

    def _api_spectra(self, params: dict[str, str]) -> None:
        check_params(params, set())
        self._send_json(self.server.app.spectra())

    def _api_spectrum(self, params: dict[str, str]) -> None:
        self._send_json(self.server.app.spectrum(params))

    def _api_lines(self, params: dict[str, str]) -> None:
        self._send_json(self.server.app.lines(params))

    def _api_map(self, params: dict[str, str]) -> None:
        self._map(params, window=False)

    def _api_window(self, params: dict[str, str]) -> None:
        self._map(params, window=True)

    # the registered photograph (maxrf.viewer.overlay)
    def _api_registration(self, params: dict[str, str]) -> None:
        from maxrf.viewer.overlay import photo_view

        check_params(params, set())
        self._send_json(photo_view(self.server.app).registration())

    def _api_photo(self, params: dict[str, str]) -> None:
        from maxrf.viewer.overlay import photo_view

        check_params(params, set())
        self._send(photo_view(self.server.app).photo_jpeg(), 200, "image/jpeg")

    def _api_photo_overlay(self, params: dict[str, str]) -> None:
        from maxrf.viewer.overlay import photo_view

        self._send(photo_view(self.server.app).overlay_png(params), 200, "image/png")

    def _api_photo_pixel(self, params: dict[str, str]) -> None:
        from maxrf.viewer.overlay import photo_view

        self._send_json(photo_view(self.server.app).pixel(params))

    def _map(self, params: dict[str, str], *, window: bool) -> None:
        fmt = get_choice(params, "format", ("json", "png"), "json")
        view = get_choice(params, "view", ("linear", "equalised"), "linear")
        desc, data = self.server.app.map(params, window=window)
        if fmt == "png":
            self._send(map_png(desc, data, view), 200, "image/png")
        else:
            self._send_json({**desc, **encode_map(data)})


class _ForbiddenError(Exception):
    pass


def parse_query(query: str) -> dict[str, str]:
    """Strictly parsed query parameters (each at most once)."""
    if len(query) > MAX_QUERY:
        raise RequestError(f"query longer than {MAX_QUERY} characters")
    if not query:
        return {}
    try:
        pairs = urllib.parse.parse_qsl(
            query, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=16
        )
    except ValueError as exc:  # also UnicodeDecodeError
        raise RequestError(f"malformed query ({str(exc)[:80]})") from None
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out:
            raise RequestError(f"parameter {k[:40]!r} given twice")
        if "\x00" in k or "\x00" in v:
            raise RequestError("NUL character in the query")
        out[k] = v
    return out


def map_png(desc: dict[str, Any], data: np.ndarray, view: str) -> bytes:
    """A map as a colour-mapped PNG (the element's colour ramp, viridis for windows)."""
    from maxrf.plot import images
    from maxrf.report import figures
    from maxrf.report.layers import element_rgb

    el = desc.get("element")
    cmap = images.element_cmap(element_rgb(el)) if el else images.viridis()
    if view == "equalised":
        return images.map_png(figures.equalise(np.asarray(data, dtype=np.float64)), cmap, 0.0, 1.0)
    lo, hi = figures.finite_range(np.asarray(data, dtype=np.float64))
    return images.map_png(data, cmap, min(0.0, lo), hi)


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    return obj


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        v = o.item()
        return v if not isinstance(v, float) or np.isfinite(v) else None
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def make_server(ds: DataStackLike, port: int = 8000, host: str = "127.0.0.1", *,
                verbose: bool = False, pixel_size_mm: float | None = None) -> ViewerServer:
    """A viewer server for a DataStack, bound but not yet serving.

    Parameters
    ----------
    ds : DataStack or path
        The scan.
    port : int
        TCP port; 0 picks a free one (see ``server.port``).
    host : str
        Address to bind; the loopback by default (only this computer can connect).
    verbose : bool
        Log every request on standard error.
    pixel_size_mm : float, optional
        Scan pixel size (mm) for the map's scale bar (default: from the scan's header).

    Returns
    -------
    ViewerServer
        Call ``serve_forever()`` (or ``start_thread()``), then ``shutdown()`` and
        ``server_close()``.

    Raises
    ------
    ParameterError
        If the port is in use or not allowed.
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ParameterError(f"port must be a number 0..65535, got {port!r}")
    app = ViewerApp(ds, pixel_size_mm=pixel_size_mm)
    try:
        return ViewerServer(app, host, port, verbose=verbose)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ParameterError(f"port {port} is already in use; choose another with --port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ParameterError(f"not allowed to listen on port {port}; choose one above 1023") from None
        raise ParameterError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve(
    ds: DataStackLike, port: int = 8000, host: str = "127.0.0.1", *, open_browser: bool = False,
    verbose: bool = False, pixel_size_mm: float | None = None,
) -> None:
    """Serve the viewer of a DataStack until interrupted (Ctrl-C).

    Parameters
    ----------
    ds : DataStack or path
        The scan.
    port : int
        TCP port (default 8000; 0 = any free port).
    host : str
        Address to bind (default ``127.0.0.1``: reachable from this computer only).
    open_browser : bool
        Open the viewer in the default web browser.
    verbose : bool
        Log every request.
    pixel_size_mm : float, optional
        Scan pixel size (mm) for the map's scale bar (default: from the scan's header).
    """
    server = make_server(ds, port, host, verbose=verbose, pixel_size_mm=pixel_size_mm)
    print(f"maxrf viewer of {server.app.ds.path.name}: {server.url}  (Ctrl-C to stop)", flush=True)
    if not server.loopback_only:
        print(
            f"warning: listening on {host}: anyone who can reach this computer can see the scan",
            file=sys.stderr,
        )
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
