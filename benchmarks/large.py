"""Cubes larger than memory (``make bench-large``).

Generates a synthetic scan larger than this machine's RAM with ``maxrf.synth`` (streaming;
at least 28 GB when the disk has room, else as large as the free space allows, and the
results say so), then runs each pipeline step in its own child process with a fixed
memory budget and records wall time, cube bytes read (engine counters and the kernel's
/proc/self/io), and peak RSS. The baseline is one plain numpy pass over the same raw file
measured in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import psutil

from benchmarks.common import WORK, save

TARGET_GB = float(os.environ.get("MAXRF_LARGE_GB", 28))
ELEMENTS = ("Ca", "Fe", "Cu", "Zn", "Pb")
BUDGET_MB = int(os.environ.get("MAXRF_BUDGET_MB", 256))

CHILD_PRELUDE = """
import json, resource, sys, time, os
def _io():
    try:
        d = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())
        return {k: int(v) for k, v in d.items()}
    except OSError:
        return {}
t0 = time.perf_counter()
io0 = _io()
"""

CHILD_EPILOGUE = """
from maxrf import engine
io1 = _io()
print('RESULT ' + json.dumps({
    'seconds': time.perf_counter() - t0,
    'peak_rss_bytes': [int(l.split()[1]) * 1024 for l in open('/proc/self/status')
                       if l.startswith('VmHWM:')][0],
    'engine_bytes_read': engine.stats['bytes_read'],
    'engine_runs': engine.stats['runs'],
    'kernel_read_bytes': io1.get('read_bytes', 0) - io0.get('read_bytes', 0),
    'rchar': io1.get('rchar', 0) - io0.get('rchar', 0),
}))
"""


def run_child(code: str) -> dict:
    import subprocess

    env = {**os.environ, "MAXRF_BUDGET_MB": str(BUDGET_MB)}
    proc = subprocess.run([sys.executable, "-c", CHILD_PRELUDE + code + CHILD_EPILOGUE],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    for ln in proc.stdout.splitlines():
        if ln.startswith("RESULT_EXTRA "):
            n_maps, nbytes = map(int, ln.split()[1:3])
            result["output_maps"] = n_maps
            result["output_map_bytes"] = nbytes
    return result


def plan_size(folder: Path) -> tuple[float, str]:
    """Cube size (GB) that fits the disk: raw + compressed store + margin.

    Files of an earlier run in ``folder`` are counted as free: they are reused or replaced.
    """
    reusable = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    free = (shutil.disk_usage(folder).free + reusable) / 1e9
    ram = psutil.virtual_memory().total / 1e9
    # raw + datastack (synthetic counts compress to well under half) + 5 GB margin
    fits = (free - 5) / 1.6
    if fits >= TARGET_GB:
        return TARGET_GB, f"{TARGET_GB:.0f} GB cube; disk had {free:.0f} GB free, RAM {ram:.0f} GB"
    return max(1.0, fits), (f"SHRUNK: disk had only {free:.0f} GB free, so the cube is "
                            f"{max(1.0, fits):.1f} GB instead of {TARGET_GB:.0f} GB (RAM {ram:.0f} GB)")


def main() -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    folder = WORK / "large"
    folder.mkdir(exist_ok=True)
    gb, note = plan_size(folder)
    channels, width = 2048, 2048
    height = int(gb * 1e9 / (channels * width * 2))
    rpl = folder / "large.rpl"
    ds_path = folder / "large.datastack"
    steps: dict[str, dict] = {}

    from maxrf.io.ripple import open_scan

    existing = None
    if rpl.exists():
        try:
            existing = open_scan(rpl).shape
        except Exception:  # noqa: BLE001
            existing = None
    if existing != (height, width, channels):
        t0 = time.perf_counter()
        steps["generate"] = run_child(
            "from maxrf.synth import make_scan\n"
            f"make_scan({str(rpl)!r}, height={height}, width={width}, channels={channels}, seed=5,"
            f" counts_per_pixel=2000, elements={list(ELEMENTS)!r}, overwrite=True)\n")
        steps["generate"]["wall"] = time.perf_counter() - t0
    scan = open_scan(rpl)
    cube_bytes = scan.nbytes

    steps["numpy_pass"] = run_child(
        "import numpy as np\n"
        "from benchmarks.common import numpy_pass\n"
        "from maxrf.io.ripple import open_scan\n"
        f"s = open_scan({str(rpl)!r})\n"
        "numpy_pass(s.raw_path, s.shape, s.header.dtype, rows=4)\n")
    steps["convert"] = run_child(
        "from maxrf.convert import convert\n"
        f"convert({str(rpl)!r}, {str(ds_path)!r}, overwrite=True, calibrate=False)\n")
    steps["calibrate"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.calibration import calibrate_datastack\n"
        f"calibrate_datastack(DataStack({str(ds_path)!r}))\n")
    steps["hotmax"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.hotmax import HotmaxAtlas\n"
        f"HotmaxAtlas(DataStack({str(ds_path)!r}), recompute=True)\n")
    steps["identify"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.identify import identify\n"
        f"identify(DataStack({str(ds_path)!r}))\n")
    # Peak maps at the default (noise-scaled) prominence plus fitted maps of the identified
    # elements, streamed into the store: the library call `maxrf maps` makes.
    steps["maps"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.maps import compute_maps, identified_elements\n"
        f"ds = DataStack({str(ds_path)!r})\n"
        f"els = identified_elements(ds) or {list(ELEMENTS)!r}\n"
        "r = compute_maps(ds, peaks=True, elements=els, method='fit', store=True)\n"
        "n_maps = 2 * len(r.peaks.slices) + len(r.elements.elements) + 1\n"
        "print('RESULT_EXTRA', n_maps, ds.shape[0] * ds.shape[1] * 4 * n_maps)\n")
    steps["speckles"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.speckles import find_speckles\n"
        f"ds = DataStack({str(ds_path)!r})\n"
        "atlas, table = find_speckles(ds, 'Fe')\n")
    # unsupervised components and classes (sample fit, then one pass streamed to the store)
    steps["decompose"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.decomposition import decompose\n"
        f"decompose(DataStack({str(ds_path)!r}))\n")
    # the shareable report of the whole scan: every map drawn from the store, one at a time
    steps["report"] = run_child(
        "from maxrf import DataStack\nfrom maxrf.report import write_report\n"
        f"write_report(DataStack({str(ds_path)!r}), {str(folder / 'large.html')!r})\n")
    steps["verify"] = run_child(
        "from maxrf.verify import verify\n"
        f"rep = verify({str(ds_path)!r})\n"
        "assert rep.ok, rep.problems[:5]\n")

    base = steps["numpy_pass"].get("seconds")
    summary = {}
    for name, st in steps.items():
        if "error" in st or name == "generate":
            continue
        summary[name] = {
            "seconds": round(st["seconds"], 1),
            "cube_reads": round(st["engine_bytes_read"] / cube_bytes, 3) if name != "numpy_pass" else 1.0,
            "kernel_read_GB": round(st["kernel_read_bytes"] / 1e9, 2),
            "peak_rss_MB": round(st["peak_rss_bytes"] / 2**20),
            "ratio_to_numpy_pass": round(st["seconds"] / base, 2) if base else None,
            "rss_ok": st["peak_rss_bytes"] / 2**20 < BUDGET_MB + 300,
        }
        if "output_map_bytes" in st:  # the maps written (k x H x W float32), streamed to disk
            summary[name]["output_maps"] = st["output_maps"]
            summary[name]["output_maps_MB"] = round(st["output_map_bytes"] / 2**20)
    return {
        "note": note,
        "cube_bytes": cube_bytes,
        "cube_GB": cube_bytes / 1e9,
        "ram_GB": psutil.virtual_memory().total / 1e9,
        "shape": list(scan.shape),
        "budget_MB": BUDGET_MB,
        "rss_limit_MB": BUDGET_MB + 300,
        "summary": summary,
        "steps": steps,
    }


if __name__ == "__main__":
    result = main()
    print(save("large", result))
    print(json.dumps(result["summary"], indent=1))
