"""The module splits of issue 13 cost no speed: the code before the split against the code
after, same data, same process, CPU time (the machine is shared).

Before = the modules at git revision ``BASE`` (loaded from ``git show``), after = the
working tree. Measured:

- the speckle height scan (``_height_scan``: the sweep became a ``_Sweep`` object), a
  1000 x 1000 map, 100 heights;
- region spectra of a bounding-box mask on a dask cube (``speckles.region_spectra`` before,
  ``maxrf.pixels.region_spectra`` after);
- the hotmax pixel spectra of a DataStack (dask point indexing before, ``maxrf.pixels``
  after);
- ``fit_peaks`` on 40 peaks of a synthetic spectrum.

Results are checked equal. Run from the repo root: ``python -m benchmarks.bench_arch``;
writes ``benchmarks/results/arch.json``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, save

BASE = "33ef04d"


def _before(path: str, name: str):
    """The module at ``path`` as it was at ``BASE``, imported under ``name``."""
    text = subprocess.run(["git", "-C", str(ROOT.parent), "show", f"{BASE}:{path}"],
                          capture_output=True, text=True, check=True).stdout
    folder = Path(tempfile.mkdtemp())
    (folder / f"{name}.py").write_text(text)
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _cpu(fn, repeat: int = 3) -> tuple[float, object]:
    """Best CPU time (s) of ``repeat`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def main() -> dict:
    import dask.array as da

    from benchmarks.bench_speckles import make_map
    from maxrf import peaks, pixels
    from maxrf.hotmax import read_pixel_spectra
    from maxrf.speckles.heights import _height_levels, _height_scan
    from maxrf.synth import synth_spectrum

    old_speckles = _before("src/maxrf/speckles.py", "speckles_before")
    old_peaks = _before("src/maxrf/peaks.py", "peaks_before")
    rows = {}

    m = make_map(1000)
    heights = np.linspace(m.min(), m.max(), 100)
    levels = _height_levels(m, heights)
    tb, a = _cpu(lambda: old_speckles._height_scan(levels, 100))
    ta, b = _cpu(lambda: _height_scan(levels, 100))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    rows["height_scan"] = {"before_s": tb, "after_s": ta, "ratio": ta / tb}

    rng = np.random.default_rng(0)
    cube = rng.poisson(3.0, (600, 500, 256)).astype(np.uint16)
    dcube = da.from_array(cube, chunks=(64, 64, 256))
    box = rng.random((120, 90)) < 0.5
    tb, a = _cpu(lambda: old_speckles.region_spectra(dcube, box, offset=(200, 150)))
    ta, b = _cpu(lambda: pixels.region_spectra(dcube, box, offset=(200, 150)))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    rows["region_spectra_dask"] = {"before_s": tb, "after_s": ta, "ratio": ta / tb}

    from maxrf.convert import convert
    from maxrf.io.ripple import write_ripple

    with tempfile.TemporaryDirectory() as tmp:
        write_ripple(Path(tmp) / "c.rpl", cube)
        os.environ["MAXRF_BUDGET_MB"] = "1"
        ds = convert(Path(tmp) / "c.rpl", Path(tmp) / "c.datastack", calibrate=False)
        px = np.c_[rng.integers(0, 600, 40), rng.integers(0, 500, 40)]

        def before() -> np.ndarray:
            from maxrf import engine

            (values,) = engine.compute(ds.cube.vindex[px[:, 0], px[:, 1]])
            return np.asarray(values, dtype=np.float64)

        tb, a = _cpu(before)
        ta, b = _cpu(lambda: read_pixel_spectra(ds, px))
        np.testing.assert_array_equal(a, b)
        rows["hotmax_pixel_spectra"] = {"before_s": tb, "after_s": ta, "ratio": ta / tb}

    e = 0.01 * np.arange(4096)
    y = synth_spectrum({"Fe": 1e5, "Cu": 5e4, "Pb": 3e4, "Ca": 2e4, "Zn": 1e4}, e, rng=1)
    idx = np.arange(200, 3800, 90)
    tb, a = _cpu(lambda: old_peaks.fit_peaks(y, idx))
    ta, b = _cpu(lambda: peaks.fit_peaks(y, idx))
    assert [p.center for p in a] == [p.center for p in b]
    rows["fit_peaks"] = {"before_s": tb, "after_s": ta, "ratio": ta / tb}

    result = {"base": BASE, "timer": "process_time, best of 3", "loadavg": os.getloadavg(),
              "rows": rows}
    save("arch", result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=1))
