"""Viewer latency on a ~1 GB cube, through HTTP against a running server (issue: viewer).

Target: a pixel click answered in < 200 ms (p95). Measured with a keep-alive HTTP
connection, as a browser uses, on random pixels of a >= 1 GB datastack in
benchmarks/work/ (reused when present):

- pixel clicks, cold: OS page cache of the cube's chunk files dropped and the viewer's
  chunk cache off, so every click reads and decompresses one stored chunk from disk;
- pixel clicks, warm: chunk files in the OS cache, chunk cache off (one decompression);
- pixel clicks, chunk cache: clicks near previous ones (the default LRU cache);
- a 16 x 16 region spectrum; /api/info and /api/spectra;
- an energy-window map: one pass over the stored cube (cold), then served from the cache.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import WORK, drop_cache, save

TARGET_MS = 200.0


def ensure_stack(gb: float = 1.0) -> Path:
    """A calibrated datastack of about ``gb`` GiB in WORK (reusing the convert benchmark's scan)."""
    from maxrf.convert import convert
    from maxrf.io.ripple import open_scan
    from maxrf.store import DataStack
    from maxrf.synth import load_truth, make_scan

    WORK.mkdir(parents=True, exist_ok=True)
    channels, width = 2048, 512
    height = int(gb * 2**30 / (channels * width * 2))
    out = WORK / "viewer_bench.datastack"
    if out.exists():
        try:
            ds = DataStack(out)
            if ds.shape == (height, width, channels) and "calibration" in ds.layers:
                return out
        except Exception:
            pass
    rpl = WORK / "convert_bench.rpl"  # same recipe as bench_convert: reuse its scan
    if not rpl.exists() or open_scan(rpl).shape != (height, width, channels):
        rpl = WORK / "viewer_bench.rpl"
        if not rpl.exists() or open_scan(rpl).shape != (height, width, channels):
            make_scan(rpl, height=height, width=width, channels=channels, seed=0, overwrite=True)
    ds = convert(rpl, out, calibrate=False, overwrite=True)
    truth = load_truth(rpl)
    n = ds.shape[2]
    ds.write_layer(
        "calibration",
        {"energies": truth.offset_keV + truth.gain_keV * np.arange(n)},
        {
            "gain_keV": truth.gain_keV,
            "offset_keV": truth.offset_keV,
            "method": "manual",
            "anode": truth.anode,
            "tube_kv": truth.tube_kv,
            "peaks": [],
        },
    )
    return out


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "n": int(a.size),
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "max_ms": float(a.max()),
        "min_ms": float(a.min()),
    }


class Client:
    """One keep-alive HTTP connection; ``get`` returns (milliseconds, decoded JSON)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, path: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        dt = (time.perf_counter() - t0) * 1e3
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status} {body[:200]!r}")
        return dt, json.loads(body)


def drop_cube_cache(path: Path) -> None:
    for root, _dirs, files in os.walk(path / "cube"):
        for f in files:
            drop_cache(Path(root) / f)


def main(gb: float = 1.0, n: int = 100, seed: int = 0) -> dict:
    from maxrf.store import DataStack
    from maxrf.viewer import make_server

    path = ensure_stack(gb)
    ds = DataStack(path)
    h, w, c = ds.shape
    server = make_server(ds, port=0)
    server.start_thread()
    app = server.app
    client = Client(server.port)
    rng = np.random.default_rng(seed)
    try:
        t_info, _ = client.get("/api/info")
        t_spectra, _ = client.get("/api/spectra")

        # cold: chunk files out of the OS cache, no chunk cache
        app.chunk_cache_bytes = 0
        cold = []
        for r, col in rng.integers(0, (h, w), (n // 2, 2)):
            app._chunks.clear()
            app._chunk_bytes = 0
            drop_cube_cache(path)
            dt, s = client.get(f"/api/spectrum?row={r}&col={col}")
            cold.append(dt)
        # warm OS cache, no chunk cache: one chunk read + decompression per click
        pixels = rng.integers(0, (h, w), (n, 2))
        for r, col in pixels:  # bring the chunks into the OS cache
            client.get(f"/api/spectrum?row={r}&col={col}")
        warm = []
        for r, col in pixels:
            app._chunks.clear()
            app._chunk_bytes = 0
            dt, s = client.get(f"/api/spectrum?row={r}&col={col}")
            warm.append(dt)
        # the default chunk cache: clicks near the previous ones
        from maxrf.viewer.app import CHUNK_CACHE_BYTES

        app.chunk_cache_bytes = CHUNK_CACHE_BYTES
        cached = []
        base = rng.integers(0, (h, w), 2)
        for dr, dc in rng.integers(-3, 4, (n, 2)):
            r, col = int(np.clip(base[0] + dr, 0, h - 1)), int(np.clip(base[1] + dc, 0, w - 1))
            dt, s = client.get(f"/api/spectrum?row={r}&col={col}")
            cached.append(dt)
        # correctness spot check against dask
        for r, col in pixels[:3]:
            _, s = client.get(f"/api/spectrum?row={r}&col={col}")
            assert np.array_equal(s["counts"], ds.cube[r, col].compute()), (r, col)

        region = []
        for r, col in rng.integers(0, (h - 16, w - 16), (10, 2)):
            dt, s = client.get(f"/api/spectrum?r0={r}&c0={col}&r1={r + 16}&c1={col + 16}")
            region.append(dt)

        e = ds.energies
        mid = float(e[len(e) // 4])
        t_window_cold, m = client.get(f"/api/window?lo_keV={mid - 0.2:.4f}&hi_keV={mid + 0.2:.4f}")
        t_window_cached, _ = client.get(f"/api/window?lo_keV={mid - 0.2:.4f}&hi_keV={mid + 0.2:.4f}")
    finally:
        server.shutdown()
        server.server_close()

    chunk_bytes = ds.chunks[0] * ds.chunks[1] * ds.chunks[2] * ds.dtype.itemsize
    result = {
        "cube_bytes": h * w * c * ds.dtype.itemsize,
        "shape": [h, w, c],
        "chunks": list(ds.chunks),
        "chunk_bytes_uncompressed": chunk_bytes,
        "pixel_click_cold_disk": stats(cold),
        "pixel_click_warm_no_chunk_cache": stats(warm),
        "pixel_click_chunk_cache": stats(cached),
        "region_16x16": stats(region),
        "info_ms": t_info,
        "spectra_ms": t_spectra,
        "window_map_s": {
            "first_pass": t_window_cold / 1e3,
            "cached": t_window_cached / 1e3,
            "channels": [m["lo_channel"], m["hi_channel"]],
        },
        "target": f"pixel click p95 < {TARGET_MS:.0f} ms",
        "ok": max(stats(cold)["p95_ms"], stats(warm)["p95_ms"]) < TARGET_MS,
    }
    return result


if __name__ == "__main__":
    gb = float(sys.argv[1]) if len(sys.argv) > 1 else float(os.environ.get("MAXRF_BENCH_GB", 1.0))
    res = main(gb)
    print(save("viewer", res))
    print(json.dumps(res, indent=2))
