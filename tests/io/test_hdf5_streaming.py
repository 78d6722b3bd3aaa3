"""The plain HDF5 reader streams: converting a cube 16x the memory budget stays within it."""

from __future__ import annotations

import numpy as np

from conftest import child_peak_rss, slab_poisson_raw

BUDGET_MB = 8


def test_hdf5_cube_converts_in_bounded_memory(tmp_path):
    import h5py

    h, w, c = 256, 128, 2048  # 128 MB: 16x the budget
    raw = tmp_path / "cube.raw"
    slab_poisson_raw(raw, (h, w, c))
    src = np.memmap(raw, dtype="<u2", mode="r", shape=(h, w, c))
    with h5py.File(tmp_path / "cube.h5", "w") as f:
        d = f.create_dataset("data/cube", shape=(h, w, c), dtype="<u2", chunks=(1, 64, c))
        for r0 in range(0, h, 32):
            d[r0:r0 + 32] = src[r0:r0 + 32]
    assert h * w * c * 2 >= 16 * BUDGET_MB * 2**20
    out = tmp_path / "cube.datastack"
    code = ("from maxrf.convert import convert\n"
            f"convert({str(tmp_path / 'cube.h5')!r}, {str(out)!r}, dataset='/data/cube', calibrate=False)\n")
    base = (
        "import h5py, zarr, dask.array, scipy.fft, maxrf.convert, maxrf.io.hdf5, maxrf.seed_spectrum\n"
        "import maxrf.kernels\n")
    peak = child_peak_rss(code, BUDGET_MB)
    assert peak < (BUDGET_MB + 300) * 2**20, f"peak RSS {peak / 2**20:.0f} MB"
    work = peak - child_peak_rss(base, BUDGET_MB)
    assert work < 3 * BUDGET_MB * 2**20 + 60 * 2**20, f"convert's own memory {work / 2**20:.0f} MB"

    from maxrf.store import DataStack

    ds = DataStack(out)
    for r in (0, 131, 255):  # and the store holds the file's counts
        np.testing.assert_array_equal(np.asarray(ds.cube[r].compute()), src[r])
