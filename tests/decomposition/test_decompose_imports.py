"""decompose in a fresh process imports none of the heavy libraries it does not need.

scikit-learn, xraydb (with SQLAlchemy and scipy.interpolate), scipy.optimize, scipy.signal (with
scipy.stats), matplotlib and dask cost a decompose of the 1 GB benchmark ~2.5 s and
~170 MB before they were dropped (benchmarks/bench_decompose.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from maxrf.convert import convert
from maxrf.synth_materials import make_material_scan

SRC = str(Path(__file__).resolve().parents[2] / "src")
HEAVY = ["sklearn", "xraydb", "sqlalchemy", "scipy.signal", "scipy.stats", "scipy.interpolate",
         "scipy.optimize", "matplotlib", "dask", "distributed"]


def test_decompose_imports_nothing_heavy(tmp_path):
    truth = make_material_scan(tmp_path / "p.rpl", height=16, width=24, seed=3)
    ds = convert(truth.rpl_path, tmp_path / "p.datastack")
    code = (
        "import sys, json, warnings; warnings.simplefilter('ignore')\n"
        "from maxrf.decomposition import decompose\n"
        f"r = decompose({str(ds.path)!r}, store=True)\n"
        "assert r.n_components >= 1 and r.clustering is not None and r.elements\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MAXRF_SCHEDULER"}  # a local run
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**env, "PYTHONPATH": SRC})
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
