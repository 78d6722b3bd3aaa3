"""What the viewer answers, independent of HTTP: info, spectra, pixel/region spectra, maps.

:class:`ViewerApp` reads a DataStack lazily: the cube is never loaded. A pixel spectrum
reads the one stored chunk under the pixel (kept in a small LRU cache of decompressed
chunks, so neighbouring clicks are free); a region spectrum reads only the chunks under
the region; an energy-window map is one pass over the stored cube through the chunk
engine (:func:`maxrf.engine.run`), cached by channel window. Layers (maps, identification)
are re-read when another process replaces them.

Every argument arrives as text from the URL and is validated here; a bad one raises
:class:`RequestError` (HTTP 400) naming the parameter, a missing layer raises
:class:`NotFoundError` (HTTP 404).
"""

from __future__ import annotations

import base64
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from maxrf.engine import Block
from maxrf.maps.sums import SumImage
from maxrf.pixels import read_spectra, region_spectra
from maxrf.report.layers import (
    STANDARD_LAYERS,
    MapEntry,
    color_hex,
    element_line_groups,
    energy_axis,
    identification_summary,
    line_markers,
    load_layer,
    map_entries,
)

#: largest region (pixels) whose spectrum is computed on request
MAX_REGION_PIXELS = 256 * 256
#: decompressed chunks kept for pixel clicks (bytes)
CHUNK_CACHE_BYTES = 192 * 2**20
#: energy-window maps kept
WINDOW_CACHE_ENTRIES = 24

_INT = re.compile(r"[0-9]{1,9}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})(?:[eE][+-]?[0-9]{1,3})?")


class RequestError(ValueError):
    """A malformed or out-of-range request (HTTP 400)."""

    status = 400


class NotFoundError(LookupError):
    """The thing asked for does not exist, e.g. a layer not computed (HTTP 404)."""

    status = 404


# ----------------------------------------------------------------------------- parameters
def check_params(params: Mapping[str, str], allowed: set[str]) -> None:
    """Reject parameters the endpoint does not know."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise RequestError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )


def get_int(params: Mapping[str, str], name: str, lo: int, hi: int) -> int:
    """Integer parameter ``name`` in ``[lo, hi]``."""
    if name not in params:
        raise RequestError(f"missing parameter {name!r}")
    text = params[name]
    if not _INT.fullmatch(text):
        raise RequestError(f"parameter {name!r} must be a whole number >= 0, got {text[:40]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise RequestError(f"parameter {name!r} = {value} is out of range [{lo}, {hi}]")
    return value


def get_float(params: Mapping[str, str], name: str) -> float:
    """Finite float parameter ``name``."""
    if name not in params:
        raise RequestError(f"missing parameter {name!r}")
    text = params[name]
    if not _FLOAT.fullmatch(text):
        raise RequestError(f"parameter {name!r} must be a finite number, got {text[:40]!r}")
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"parameter {name!r} must be a finite number, got {text[:40]!r}")
    return value


def get_choice(params: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise RequestError(f"parameter {name!r} must be one of {', '.join(choices)}, got {value[:40]!r}")
    return value


# ----------------------------------------------------------------------------- window map
def json_list(a: np.ndarray) -> list[Any]:
    """An array as a JSON-safe list (NaN and infinities become null)."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return [float(v) if math.isfinite(v) else None for v in a.tolist()]
    return a.tolist()


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def encode_map(a: np.ndarray) -> dict[str, Any]:
    """A map as JSON-safe fields: shape, min/max of finite values, little-endian float32 base64."""
    a = np.ascontiguousarray(a, dtype="<f4")
    finite = a[np.isfinite(a)]
    return {
        "shape": list(a.shape),
        "min": _finite_or_none(float(finite.min())) if finite.size else None,
        "max": _finite_or_none(float(finite.max())) if finite.size else None,
        "dtype": "float32",
        "encoding": "base64",
        "data": base64.b64encode(a.tobytes()).decode("ascii"),
    }


class _CachedCube:
    """The stored cube read through the viewer's chunk cache: a block source for
    :mod:`maxrf.pixels` (neighbouring clicks reuse the chunks already read)."""

    def __init__(self, app: ViewerApp):
        self._app = app
        self.shape = app.shape
        self.chunks = app.chunks

    def read_block(self, block: Block) -> np.ndarray:
        ch, cw = self.chunks[0], self.chunks[1]
        return self._app._chunk(block.rows.start // ch, block.cols.start // cw)


class ViewerApp:
    """The viewer's data side over one DataStack.

    Parameters
    ----------
    ds : DataStack or path
        The scan (opened read-only).
    max_region_pixels : int
        Largest region whose spectrum is computed.
    pixel_size_mm : float, optional
        Scan pixel size (mm), for the map's scale bar; default: from the scan's header
        (no scale bar when it has none).
    """

    def __init__(
        self,
        ds: Any,
        *,
        max_region_pixels: int = MAX_REGION_PIXELS,
        chunk_cache_bytes: int = CHUNK_CACHE_BYTES,
        pixel_size_mm: float | None = None,
    ):
        from maxrf.errors import ParameterError
        from maxrf.export.images import header_pixel_size_mm
        from maxrf.store import open_datastack

        self.ds = open_datastack(ds)
        if pixel_size_mm is not None and not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
            raise ParameterError(f"pixel size must be a positive number of mm, got {pixel_size_mm!r}")
        self.pixel_size_mm = pixel_size_mm or header_pixel_size_mm(self.ds)
        self.shape = tuple(int(s) for s in self.ds.shape)
        self.chunks = tuple(int(c) for c in self.ds.chunks)
        self.max_region_pixels = int(max_region_pixels)
        self._source = self.ds.block_source()
        self._cached = _CachedCube(self)
        self._chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._chunk_bytes = 0
        self.chunk_cache_bytes = int(chunk_cache_bytes)
        self._chunk_lock = threading.Lock()
        self._chunk_loading: dict[tuple[int, int], threading.Lock] = {}
        self._windows: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._window_lock = threading.Lock()  # one cube pass at a time
        self._layer_lock = threading.Lock()
        self._token: Any = None
        self._load_layers()

    # ----------------------------------------------------------------- layers
    def _layers_token(self) -> Any:
        from maxrf.store import store_state

        try:
            layers = store_state(self.ds.path).layers
            return tuple(sorted((k, e.dir) for k, e in layers.items()))
        except Exception:
            return None

    def _load_layers(self) -> None:
        token = self._layers_token()
        self.energies, self.unit = energy_axis(self.ds)
        entries, statuses = map_entries(self.ds)
        self._maps: dict[str, MapEntry] = {e.key: e for e in entries}
        self.statuses = {}
        for name in STANDARD_LAYERS:
            self.statuses[name] = statuses.get(name) or load_layer(self.ds, name)[1]
        elements, _instrument, st = identification_summary(self.ds)
        self.statuses["identification"] = st
        self.elements = elements
        try:
            self.markers = line_markers(self.ds, self.energies, self.unit)
        except Exception:
            self.markers = []
        self.sum_spectrum = np.asarray(self.ds.sum_spectrum, dtype=np.float64)
        self.max_spectrum = np.asarray(self.ds.max_spectrum, dtype=np.float64)
        self._token = token

    def refresh(self) -> None:
        """Re-read the layers if another process replaced any since the last look."""
        token = self._layers_token()
        if token != self._token:
            with self._layer_lock:
                if token != self._token:
                    self._load_layers()

    # ----------------------------------------------------------------- endpoints
    def info(self) -> dict[str, Any]:
        """Scan description, layer states, maps, line markers, limits."""
        self.refresh()
        h, w, c = self.shape
        cal = self.ds.calibration
        md = self.ds.metadata
        src = md.get("source") if isinstance(md.get("source"), Mapping) else {}
        return {
            "name": self.ds.path.name.removesuffix(".datastack"),
            "shape": [h, w, c],
            "dtype": str(self.ds.dtype),
            "chunks": list(self.chunks),
            "unit": self.unit,
            "energy_range": [float(self.energies[0]), float(self.energies[-1])],
            "calibration": None
            if cal is None
            else {k: cal.get(k) for k in ("gain_keV", "offset_keV", "method", "anode", "tube_kv")},
            "source": src.get("rpl") or src.get("path"),
            "layers": [s.to_dict() for s in self.statuses.values()],
            "maps": [e.to_dict() for e in self._maps.values()],
            "markers": self.markers,
            "elements": [
                {k: e[k] for k in ("element", "status", "confidence", "present")}
                | {"color": color_hex(e["element"])}
                for e in self.elements
            ],
            "limits": {"max_region_pixels": self.max_region_pixels},
            "pixel_size_mm": self.pixel_size_mm,
        }

    def segmentation(self) -> dict[str, Any]:
        """Class image and particle table of the ``segmentation`` layer."""
        from maxrf.viewer.segmentation import payload

        self.refresh()
        return payload(self.ds)

    def spectra(self) -> dict[str, Any]:
        """Energies and the sum (mean per pixel) and max spectra."""
        self.refresh()
        return {
            "unit": self.unit,
            "energies": json_list(self.energies),
            "sum": json_list(self.sum_spectrum),
            "max": json_list(self.max_spectrum),
        }

    def _chunk(self, bi: int, bj: int) -> np.ndarray:
        key = (bi, bj)
        with self._chunk_lock:
            hit = self._chunks.get(key)
            if hit is not None:
                self._chunks.move_to_end(key)
                return hit
            loading = self._chunk_loading.setdefault(key, threading.Lock())
        with loading:  # two clicks on one chunk read it once
            with self._chunk_lock:
                hit = self._chunks.get(key)
                if hit is not None:
                    return hit
            ch, cw = self.chunks[0], self.chunks[1]
            h, w = self.shape[:2]
            block = Block(0, slice(bi * ch, min(h, (bi + 1) * ch)), slice(bj * cw, min(w, (bj + 1) * cw)))
            data = np.asarray(self._source.read_block(block))
            with self._chunk_lock:
                self._chunks[key] = data
                self._chunk_bytes += data.nbytes
                while self._chunk_bytes > self.chunk_cache_bytes and len(self._chunks) > 1:
                    _k, old = self._chunks.popitem(last=False)
                    self._chunk_bytes -= old.nbytes
                self._chunk_loading.pop(key, None)
            return data

    def pixel_spectrum(self, row: int, col: int) -> np.ndarray:
        """The stored spectrum of one pixel (reads one chunk at most)."""
        return read_spectra(self._cached, [row], [col])[0]

    def region_spectrum(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        """Mean spectrum over rows ``r0..r1-1`` and columns ``c0..c1-1`` (reads only their chunks)."""
        box = np.ones((r1 - r0, c1 - c0), dtype=bool)
        return region_spectra(self._cached, box, offset=(r0, c0))

    def spectrum(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``row, col`` -> that pixel's spectrum; ``r0, c0, r1, c1`` (end exclusive) -> the
        region's mean spectrum."""
        h, w, _c = self.shape
        if "row" in params or "col" in params:
            check_params(params, {"row", "col"})
            row = get_int(params, "row", 0, h - 1)
            col = get_int(params, "col", 0, w - 1)
            counts = self.pixel_spectrum(row, col)
            return {
                "kind": "pixel",
                "row": row,
                "col": col,
                "n_pixels": 1,
                "units": "counts per channel",
                "total": _finite_or_none(float(np.nansum(counts, dtype=np.float64))),
                "counts": json_list(counts),
            }
        check_params(params, {"r0", "c0", "r1", "c1"})
        if not params:
            raise RequestError("give row and col (a pixel) or r0, c0, r1, c1 (a region, end exclusive)")
        r0 = get_int(params, "r0", 0, h - 1)
        c0 = get_int(params, "c0", 0, w - 1)
        r1 = get_int(params, "r1", 1, h)
        c1 = get_int(params, "c1", 1, w)
        if r1 <= r0 or c1 <= c0:
            raise RequestError(
                f"empty region: need r0 < r1 and c0 < c1, got rows {r0}..{r1}, cols {c0}..{c1}"
            )
        n = (r1 - r0) * (c1 - c0)
        if n > self.max_region_pixels:
            raise RequestError(f"region of {n} pixels is larger than the limit of {self.max_region_pixels}")
        counts = self.region_spectrum(r0, c0, r1, c1)
        return {
            "kind": "region",
            "r0": r0,
            "c0": c0,
            "r1": r1,
            "c1": c1,
            "n_pixels": n,
            "units": "mean counts per channel per pixel",
            "total": _finite_or_none(float(np.nansum(counts))),
            "counts": json_list(counts),
        }

    def lines(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Main line groups of one element (``element=Zn``)."""
        from maxrf.physics import normalize_element

        check_params(params, {"element"})
        text = params.get("element", "")
        if not re.fullmatch(r"[A-Za-z]{1,3}|[0-9]{1,3}", text):
            raise RequestError(f"parameter 'element' must be a chemical symbol such as Fe, got {text[:20]!r}")
        try:
            el = normalize_element(int(text) if text.isdigit() else text)
        except Exception:
            raise RequestError(f"unknown element {text!r}") from None
        cal = self.ds.calibration or {}
        kv = cal.get("tube_kv") if isinstance(cal.get("tube_kv"), (int, float)) else 40.0
        groups = element_line_groups(el, float(kv or 40.0))
        return {
            "element": el,
            "color": color_hex(el),
            "lines": [{"line": g["line"], "keV": g["keV"], "rel": g["rel"]} for g in groups],
        }

    # ----------------------------------------------------------------- maps
    def layer_map(self, params: Mapping[str, str]) -> tuple[MapEntry, np.ndarray]:
        self.refresh()
        check_params(params, {"name", "format", "view"})
        name = params.get("name")
        if not name:
            raise RequestError("missing parameter 'name' (a map key from /api/info, e.g. Fe)")
        entry = self._maps.get(name)
        if entry is None:
            want = "element_maps" if not name.startswith("peak:") else "peak_maps"
            st = self.statuses.get(want)
            if st is not None and not st.ok:
                raise NotFoundError(f"no map {name[:60]!r}: {st.description} {st.state} — {st.message}")
            raise NotFoundError(f"no map {name[:60]!r}; the maps are: {', '.join(self._maps) or 'none'}")
        return entry, np.asarray(entry.data, dtype=np.float32)

    def window_channels(self, params: Mapping[str, str]) -> tuple[int, int]:
        """Channel window (inclusive) of ``lo_keV, hi_keV`` or ``lo, hi`` (channels)."""
        c = self.shape[2]
        if "lo" in params or "hi" in params:
            check_params(params, {"lo", "hi", "format", "view"})
            lo = get_int(params, "lo", 0, c - 1)
            hi = get_int(params, "hi", 0, c - 1)
            if hi < lo:
                raise RequestError(f"empty window: lo = {lo} > hi = {hi}")
            return lo, hi
        check_params(params, {"lo_keV", "hi_keV", "format", "view"})
        lo_e = get_float(params, "lo_keV")
        hi_e = get_float(params, "hi_keV")
        if hi_e <= lo_e:
            raise RequestError(f"empty window: lo_keV = {lo_e} >= hi_keV = {hi_e}")
        if self.unit != "keV":
            raise RequestError("this scan has no energy calibration: give the window in channels (lo, hi)")
        e = self.energies
        if hi_e < e[0] or lo_e > e[-1]:
            raise RequestError(
                f"window {lo_e}..{hi_e} keV is outside the spectrum ({e[0]:.3f}..{e[-1]:.3f} keV)"
            )
        lo = int(np.searchsorted(e, lo_e, "left"))
        hi = int(np.searchsorted(e, hi_e, "right")) - 1
        if hi < lo:  # narrower than a channel: the channel at its centre
            lo = hi = int(np.clip(np.argmin(np.abs(e - (lo_e + hi_e) / 2)), 0, c - 1))
        return max(0, lo), min(c - 1, hi)

    def window_map(self, lo: int, hi: int) -> np.ndarray:
        """Per pixel, counts in channels ``lo..hi``: one engine pass over the stored cube (cached)."""
        from maxrf import engine

        key = (lo, hi)
        with self._window_lock:
            hit = self._windows.get(key)
            if hit is not None:
                self._windows.move_to_end(key)
                return hit
            out = engine.run(self._source, {"w": SumImage(lo, hi)})["w"][0]
            self._windows[key] = out
            while len(self._windows) > WINDOW_CACHE_ENTRIES:
                self._windows.popitem(last=False)
            return out

    def map(self, params: Mapping[str, str], *, window: bool) -> tuple[dict[str, Any], np.ndarray]:
        """A layer map (``name=``) or an energy-window map (``lo_keV, hi_keV`` | ``lo, hi``).

        Returns
        -------
        (dict, ndarray)
            Description (JSON-safe, without the data) and the float32 map.
        """
        if window:
            lo, hi = self.window_channels(params)
            data = self.window_map(lo, hi)
            e = self.energies
            label = f"{e[lo]:.2f}–{e[hi]:.2f} keV" if self.unit == "keV" else f"channels {lo}–{hi}"
            desc = {
                "key": f"window:{lo}:{hi}",
                "label": label,
                "layer": "window",
                "element": None,
                "color": None,
                "units": f"counts in {label}",
                "lo_channel": lo,
                "hi_channel": hi,
                "lo_keV": float(e[lo]) if self.unit == "keV" else None,
                "hi_keV": float(e[hi]) if self.unit == "keV" else None,
            }
        else:
            entry, data = self.layer_map(params)
            desc = entry.to_dict()
        return desc, data
