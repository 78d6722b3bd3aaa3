"""Convert's peak memory stays under the chunk budget + 300 MB on a cube >= 8x the budget."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import PEAK_RSS as HWM
from conftest import write_pair


def test_convert_peak_rss_bounded(tmp_path):
    # 8x+ the budget: 16 MB budget, ~150 MB cube (written in slabs to keep the test lean)
    h, w, c = 300, 128, 2048
    rng = np.random.default_rng(0)
    write_pair(tmp_path, rng.poisson(2.0, size=(1, w, c)).astype(np.uint16))
    raw = tmp_path / "scan.raw"
    with open(raw, "wb") as f:
        for _ in range(h // 50):
            f.write(rng.poisson(2.0, size=(50, w, c)).astype("<u2").tobytes())
    (tmp_path / "scan.rpl").write_text(
        (tmp_path / "scan.rpl").read_text().replace("height\t1\n", f"height\t{h}\n")
    )
    budget_mb = 16
    assert h * w * c * 2 >= 8 * budget_mb * 2**20
    code = (
        "import resource\n"
        "from maxrf.convert import convert\n"
        f"convert({str(tmp_path / 'scan.rpl')!r}, calibrate=False)\n"
        + HWM
    )
    # baseline: the same interpreter importing everything convert imports, doing nothing
    base_code = (
        "import resource, zarr, dask.array, scipy.ndimage\n"
        "import maxrf.convert, maxrf.io.ripple, maxrf.kernels\n"
        + HWM
    )
    env = {"MAXRF_BUDGET_MB": str(budget_mb), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    base = subprocess.run([sys.executable, "-c", base_code], capture_output=True, text=True, env=env)
    peak = int(out.stdout.split()[-1])
    assert peak < (budget_mb + 300) * 2**20, f"peak RSS {peak / 2**20:.0f} MB"
    # and the work itself costs about the budget, not the cube
    assert peak - int(base.stdout.split()[-1]) < 3 * budget_mb * 2**20 + 60 * 2**20
