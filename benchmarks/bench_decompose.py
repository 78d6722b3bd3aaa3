"""Unsupervised maps (issue: decomposition): accuracy, speed and memory.

- Accuracy on synthetic paintings of known materials, on seeds not used in development
  (development used seeds 0-12): ten with five materials that share no element, ten with
  six that do (umber and yellow ochre both Fe, verdigris and brass both Cu). Per scan: the
  worst Pearson r of a true material's abundance map with its best-matching component map
  (target >= 0.9), the worst cosine of that component's spectrum with the material's
  spectrum (target >= 0.95), the adjusted Rand index of the class map against the true
  layout (target >= 0.8), and the verdict. A scan is "right" when all three hold; "good but
  wrong" counts the confident wrong answers.
- Speed and memory on a 1 GiB cube (256 x 512 x 4096 uint16, a material painting made once
  into benchmarks/work/): maxrf's decompose (sample fit + one pass, maps streamed to the
  store) against maxrf4u's NMF, each in a child process with its wall time, CPU time and
  peak RSS, and one plain numpy pass over the stored cube for scale.

The baseline is maxrf4u's own code, not an emulation: maxrf4u 0.1.27 (the release on the
package index; the same files as commit e998b1d of github.com/fligt/maxrf4u) installed by
:func:`maxrf4u_python` into its own virtualenv, benchmarks/work/maxrf4u-venv (its
dependencies as pip resolves them today). Its datastack is made once
(:func:`maxrf4u_datastack`) by maxrf4u's own functions, as its ``raw_to_element_maps`` runs
them, from a raw file of the same counts: ``raw_to_datastack`` (storage.py: the cube as
float32, Gaussian-smoothed along the spectrum with sigma 7 channels by dask-image, rechunked
by dask's 'auto' chunks, written to a zarr ZipStore, then the max and sum spectra) run line
by line from 0.1.27 except its write (``smoothed.to_zarr(ZipStore)`` leaves a broken zip with
today's dask and zarr, as maxrf4u's later releases note; written with ``zarr.create_array``
as they do, in the same chunks), the energies (its ``calibrate`` asks a person to confirm
fitted instrument peaks; the scan's true calibration is appended in its place, as
``calibrate`` appends it), ``compute_hotmax_spectra`` and ``compute_hotmax_noise``
(hotmax.py: the pixel of each max-spectrum peak, its spectrum and rolling-ball baseline).
What is timed is ``maxrf4u.compute_nmf_peakmaps(datastack, auto_write=True)`` (peakmaps.py):
components = one height-normalised Gaussian per hotmax peak (fitted at 20 % of the peak
height above the hotmax baseline) plus the continuum (two rolling-ball passes over the sum
spectrum); then, for every (row, column) chunk of the stored float32 cube with all its
channels, ``sklearn.decomposition.non_negative_factorization(X, H=H, update_H=False)`` (cd
solver, 200 iterations at most) into an (H, W, n) float32 stack held in memory, appended
to the zip store at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common import PEAK_RSS_SNIPPET, VM_HWM_SNIPPET, WORK, child_usage, timed

ACCURACY_SEEDS = list(range(100, 110))
SHARED_SEEDS = list(range(110, 120))
SHARED = ["chalk", "vermilion", "umber", "yellow ochre", "verdigris", "brass"]
SHAPE = (256, 512, 4096)
BUDGET_MB = 256
#: the maxrf4u release the baseline runs (its own code, in its own virtualenv), and the last
#: zarr 3.0: 0.1.27 opens a writable ZipStore with mode 'r', which zarr >= 3.1 refuses
MAXRF4U = "maxrf4u==0.1.27"
M4U_PINS = ["zarr==3.0.8"]
M4U_VENV = WORK / "maxrf4u-venv"


def maxrf4u_python() -> Path:
    """Interpreter of a virtualenv with maxrf4u installed from the package index (made here
    when missing or broken; its dependencies as pip resolves them today, but for
    :data:`M4U_PINS`)."""
    py = M4U_VENV / "bin" / "python"
    probe = [str(py), "-c", "import maxrf4u, zarr, sys; sys.stdout.write("
             "'maxrf4u==' + maxrf4u.__version__ + ' zarr==' + zarr.__version__)"]
    want = " ".join([MAXRF4U, *M4U_PINS])
    if py.exists() and subprocess.run(probe, capture_output=True, text=True).stdout == want:
        return py
    WORK.mkdir(parents=True, exist_ok=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(M4U_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", MAXRF4U, *M4U_PINS], check=True)
    got = subprocess.run(probe, capture_output=True, text=True)
    if got.stdout != want:
        raise RuntimeError(f"maxrf4u does not import in {M4U_VENV}: {got.stderr[-2000:]}")
    return py


def _score(truth, result) -> dict:
    from sklearn.metrics import adjusted_rand_score

    maps = np.asarray(result.maps[:])
    rs, coss = [], []
    for m in range(len(truth.materials)):
        r = [np.corrcoef(truth.abundances[m].ravel(), mp.ravel())[0, 1] for mp in maps]
        j = int(np.nanargmax(r))
        a, b = truth.spectra[m], result.components[j]
        rs.append(float(r[j]))
        coss.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    ari = float(adjusted_rand_score(truth.labels.ravel(), np.asarray(result.clustering.labels[:]).ravel()))
    right = min(rs) >= 0.9 and min(coss) >= 0.95 and ari >= 0.8
    return {"r_min": round(min(rs), 4), "cosine_min": round(min(coss), 4), "ari": round(ari, 4),
            "components": result.n_components, "classes": result.clustering.n_classes,
            "quality": result.quality, "right": bool(right)}


def accuracy(tmp) -> dict:
    from maxrf.convert import convert
    from maxrf.decomposition import decompose
    from maxrf.synth_materials import make_material_scan

    cases = []
    for seed in ACCURACY_SEEDS + SHARED_SEEDS:
        kw = {"materials": SHARED, "n_regions": 9} if seed in SHARED_SEEDS else {}
        d = tmp / f"s{seed}"
        d.mkdir()
        truth = make_material_scan(d / "p.rpl", height=48, width=64, seed=seed, **kw)
        ds = convert(truth.rpl_path, d / "p.datastack")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dt, res = timed(decompose, ds, store=False)
        cases.append({"seed": seed, "shared_elements": seed in SHARED_SEEDS, "seconds": round(dt, 2),
                      **_score(truth, res)})
        shutil.rmtree(d)
    n = len(cases)
    good = [c for c in cases if c["quality"] == "good"]
    return {
        "cases": cases,
        "n": n,
        "right": sum(c["right"] for c in cases) / n,
        "r_ge_0.9": sum(c["r_min"] >= 0.9 for c in cases) / n,
        "cosine_ge_0.95": sum(c["cosine_min"] >= 0.95 for c in cases) / n,
        "ari_ge_0.8": sum(c["ari"] >= 0.8 for c in cases) / n,
        "called_good": len(good) / n,
        "right_when_good": (sum(c["right"] for c in good) / len(good)) if good else None,
        "good_but_wrong": sum(not c["right"] for c in good),
    }


def _big_datastack():
    from maxrf.convert import convert
    from maxrf.store import DataStack
    from maxrf.synth_materials import make_material_scan

    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "decompose_bench.datastack"
    if out.exists():
        try:
            ds = DataStack(out)
            if ds.shape == SHAPE:
                return ds
        except Exception:  # noqa: BLE001 - remake a damaged leftover
            pass
        shutil.rmtree(out)
    rpl = WORK / "decompose_bench.rpl"
    make_material_scan(rpl, height=SHAPE[0], width=SHAPE[1], channels=SHAPE[2], gain_keV=0.01,
                       offset_keV=-0.2, seed=7, block_rows=8)
    ds = convert(rpl, out)
    for p in (rpl, rpl.with_suffix(".raw")):
        p.unlink(missing_ok=True)
    return ds


_OURS = """
import warnings; warnings.simplefilter('ignore')
from maxrf.decomposition import decompose
r = decompose({path!r}, store=True)
print('K', r.n_components)
"""

M4U_DIR = WORK / "decompose_bench_maxrf4u"
M4U_DS = M4U_DIR / "decompose_bench.datastack"

# maxrf4u's own steps, in order, as its raw_to_element_maps runs them (0.1.27 asks for
# confirmation on stdin: answered 'y'). raw_to_datastack is 0.1.27's line by line but for
# the write: its ``smoothed.to_zarr(ZipStore)`` leaves a broken zip with today's dask and
# zarr (its later releases say so and write with ``zarr.create_array``, as here, keeping the
# dask chunks to_zarr would have written). Its calibrate() is interactive (a person confirms
# fitted instrument peaks), so the energies it would write are the scan's true calibration,
# appended the way calibrate() appends them.
_M4U_CUBE = """
import numpy as np, dask.array as da, zarr, maxrf4u
from zarr.storage import ZipStore
from dask_image.ndfilters import gaussian_filter
dtype, shape = maxrf4u.parse_rpl({rpl!r})
raw_mm = np.memmap({raw!r}, dtype=dtype, mode='r', shape=shape)
arr = da.from_array(raw_mm)
arr = arr.astype(np.float32)
arr = arr.rechunk(balance=True)
smoothed = gaussian_filter(arr, (0, 0, 7))
zs = ZipStore({ds!r}, mode='w')
zarr.create_array(store=zs, name='maxrf_cube', data=smoothed, chunks=smoothed.chunksize)
zs.close()
print('OK', smoothed.chunksize)
"""

_M4U_PREP = """
import builtins, numpy as np, maxrf4u
builtins.input = lambda *a: 'y'
f = {ds!r}
y_max, y_sum = maxrf4u.max_and_sum_spectra(f, datapath='maxrf_cube')
maxrf4u.append(y_max, 'maxrf_maxspectrum', f)
maxrf4u.append(y_sum, 'maxrf_sumspectrum', f)
maxrf4u.append(np.load({energies!r}), 'maxrf_energies', f)
maxrf4u.compute_hotmax_spectra(f, auto_write=True)
maxrf4u.compute_hotmax_noise(f)
print('OK')
"""

_M4U_HAS_CUBE = """
import zipfile, json
with zipfile.ZipFile({ds!r}) as z:
    names = set(z.namelist())
    meta = json.loads(z.read('maxrf_cube/zarr.json'))
print('CUBE' if meta['shape'] == {shape!r} and 'maxrf_maxspectrum/zarr.json' not in names else 'NO')
"""

# what is timed: maxrf4u's NMF peak maps, its own function on its own datastack
_M4U_NMF = """
import maxrf4u
peak_maps = maxrf4u.compute_nmf_peakmaps({ds!r}, auto_write=True)
print('K', peak_maps.shape[0])
"""

_RPL = "width\t{w}\nheight\t{h}\ndepth\t{c}\noffset\t0\ndata-Length\t2\ndata-type\tunsigned\n" \
       "byte-order\tlittle-endian\nrecord-by\tvector\n"


def maxrf4u_datastack(ds) -> Path:
    """maxrf4u's datastack of the benchmark cube, made once by maxrf4u itself from a raw
    file of the same counts: Gaussian smoothing (sigma 7 channels) into a float32 cube in a
    zarr zip store, max and sum spectra, the energies, hotmax spectra and their baselines."""
    done = M4U_DIR / "complete"
    if done.exists() and M4U_DS.exists():
        return M4U_DS
    py = maxrf4u_python()
    h, w, c = ds.shape
    energies = M4U_DIR / "energies.npy"
    try:  # the smoothed cube (the slow step) already written by an interrupted run
        has_cube = "CUBE" in child_usage(_M4U_HAS_CUBE.format(ds=str(M4U_DS), shape=[h, w, c]),
                                         python=py)["stdout"]
    except RuntimeError:
        has_cube = False
    if not has_cube:
        shutil.rmtree(M4U_DIR, ignore_errors=True)
        M4U_DIR.mkdir(parents=True)
        raw, rpl = M4U_DIR / "decompose_bench.raw", M4U_DIR / "decompose_bench.rpl"
        rpl.write_text(_RPL.format(w=w, h=h, c=c))  # the keys as Bruker writes them
        with open(raw, "wb") as f:
            for r0 in range(0, h, 16):
                f.write(np.ascontiguousarray(ds.cube[r0:r0 + 16].compute(), dtype="<u2").tobytes())
        child_usage(_M4U_CUBE.format(raw=str(raw), rpl=str(rpl), ds=str(M4U_DS)), python=py)
    (M4U_DIR / "decompose_bench.raw").unlink(missing_ok=True)
    np.save(energies, np.asarray(ds.energies, dtype=float))
    child_usage(_M4U_PREP.format(ds=str(M4U_DS), energies=str(energies)), {"MPLBACKEND": "Agg"},
                python=py)
    done.write_text("made by maxrf4u " + MAXRF4U + "\n")
    return M4U_DS


def _numpy_pass(ds) -> float:
    from maxrf.engine import Reduction, run

    class Sum(Reduction):
        def block(self, data, where):
            return data.sum(dtype=np.int64)

        def combine(self, parts, shape):
            return sum(p for _, p in parts)

    dt, _ = timed(run, ds.block_source(), {"s": Sum()})
    return dt


#: a baseline still running after this long is stopped and reported as taking longer
M4U_TIMEOUT_S = 1800


def _child(code: str, env: dict, python=None, timeout: float | None = None) -> dict:
    try:
        out = child_usage(code, env, python=python, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "cpu_seconds": None, "peak_rss_MB": None, "timed_out": True}
    return {"seconds": round(out["seconds"], 2), "cpu_seconds": round(out["cpu_seconds"], 2),
            "peak_rss_MB": round(out["peak_rss"] / 2**20)}


def speed() -> dict:
    ds = _big_datastack()
    m4u_ds = maxrf4u_datastack(ds)
    py = maxrf4u_python()
    env = {"MAXRF_BUDGET_MB": str(BUDGET_MB), "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}
    load = [round(x, 2) for x in os.getloadavg()]
    ours = _child(_OURS.format(path=str(ds.path)) + PEAK_RSS_SNIPPET, env)
    numpy_t = _numpy_pass(ds)
    m4u = _child(_M4U_NMF.format(ds=str(m4u_ds)) + VM_HWM_SNIPPET, env, python=py,
                 timeout=M4U_TIMEOUT_S)
    return {
        "cube_shape": list(SHAPE),
        "cube_bytes": int(np.prod(SHAPE) * 2),
        "maxrf4u_datastack_bytes": sum(p.stat().st_size for p in m4u_ds.parent.rglob("*") if p.is_file()),
        "budget_MB": BUDGET_MB,
        "maxrf_decompose": ours,
        "maxrf4u_nmf": {**m4u, "version": MAXRF4U},
        "numpy_pass_seconds": round(numpy_t, 2),
        "speedup_vs_maxrf4u": round(m4u["seconds"] / ours["seconds"], 2),
        "cpu_speedup_vs_maxrf4u": (round(m4u["cpu_seconds"] / ours["cpu_seconds"], 2)
                                   if m4u["cpu_seconds"] else None),
        "memory_ratio_maxrf4u_over_ours": (round(m4u["peak_rss_MB"] / ours["peak_rss_MB"], 2)
                                           if m4u["peak_rss_MB"] else None),
        "rss_within_budget_plus_300MB": ours["peak_rss_MB"] <= BUDGET_MB + 300,
        "decompose_over_numpy_pass": round(ours["seconds"] / numpy_t, 2),
        "loadavg_before": load,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "note": "each side in a fresh child process (interpreter start and imports included); "
                "cpu_seconds = user + system of the child; the numpy pass is in-process",
    }


def main() -> dict:
    import json
    import tempfile
    from pathlib import Path

    cache = WORK / "decompose_accuracy.json"  # the accuracy part is slow: reused when present
    if cache.exists() and os.environ.get("MAXRF_BENCH_FRESH") != "1":
        acc = json.loads(cache.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            acc = accuracy(Path(tmp))
        WORK.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(acc, default=float))
    out = {"accuracy": acc}
    if os.environ.get("MAXRF_BENCH_DECOMPOSE_SKIP_SPEED") != "1":
        out["speed"] = speed()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=1, default=float))
