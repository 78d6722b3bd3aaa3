"""The exports stream the cube: writing a cube 16x the memory budget stays within it."""

from __future__ import annotations

import pytest

from conftest import child_peak_rss, slab_poisson_raw, write_pair

BUDGET_MB = 8


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    import numpy as np

    from maxrf.convert import convert

    folder = tmp_path_factory.mktemp("big")
    h, w, c = 256, 128, 2048  # 128 MB: 16x the budget
    write_pair(folder, np.zeros((1, w, c), dtype=np.uint16))
    rpl = folder / "scan.rpl"
    rpl.write_text(rpl.read_text().replace("height\t1\n", f"height\t{h}\n"))
    slab_poisson_raw(folder / "scan.raw", (h, w, c))
    assert h * w * c * 2 >= 16 * BUDGET_MB * 2**20
    return convert(rpl, calibrate=False, seed_max=False, budget=BUDGET_MB * 2**20)


BASE = "import h5py, zarr, dask.array, rsciio.hspy, maxrf.export.hdf5, maxrf.export.hyperspy\n"


@pytest.mark.parametrize("call", [
    "from maxrf.export.hdf5 import export_hdf5\nexport_hdf5({ds!r}, {out!r} + '.h5', cube=True)\n",
    "from maxrf.export.hyperspy import export_hyperspy\nexport_hyperspy({ds!r}, {out!r} + '.hspy')\n",
    "from maxrf.export.tables import export_csv\nexport_csv({ds!r}, {out!r} + '.csv', pixels=[(3, 4)])\n",
])
def test_export_peak_rss_bounded(big_store, tmp_path, call):
    code = call.format(ds=str(big_store.path), out=str(tmp_path / "out"))
    peak = child_peak_rss(code, BUDGET_MB)
    assert peak < (BUDGET_MB + 300) * 2**20, f"peak RSS {peak / 2**20:.0f} MB"
    work = peak - child_peak_rss(BASE, BUDGET_MB)
    assert work < 3 * BUDGET_MB * 2**20 + 60 * 2**20, f"the export's own memory {work / 2**20:.0f} MB"
    assert len(list(tmp_path.iterdir())) == 1  # the file written, nothing else
