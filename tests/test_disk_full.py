"""A real full disk: a small tmpfs mounted for the test, filled up for real (no injection).

Convert, a layer write and the streamed maps each hit ENOSPC from the kernel part-way;
each must raise :class:`maxrf.errors.DiskFullError` naming the store, keep the previous
state readable and leave no file behind (the filesystem's usage returns to what it was).
Skipped where this process may not mount a filesystem (not root, or no CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from maxrf import DataStack
from maxrf.convert import convert
from maxrf.errors import DiskFullError

from conftest import poisson_cube, write_pair

SIZE_MB = 6


@pytest.fixture
def small_fs(tmp_path):
    """A freshly mounted SIZE_MB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {proc.stderr.strip()[:120]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _fill(folder: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on the filesystem of ``folder``."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_convert_onto_a_full_disk_leaves_nothing(tmp_path, small_fs):
    # random 16-bit counts do not compress: 8 MB of cube cannot fit a 6 MB filesystem
    cube = np.random.default_rng(0).integers(0, 2**16, (64, 64, 1024), dtype=np.uint16)
    rpl = write_pair(tmp_path, cube)
    before = shutil.disk_usage(small_fs).used
    with pytest.raises(DiskFullError, match="scan.datastack.*disk full"):
        convert(rpl, small_fs / "scan.datastack", calibrate=False, budget=2**20)
    assert _files(small_fs) == []
    assert shutil.disk_usage(small_fs).used == before


def test_layer_write_onto_a_full_disk_keeps_the_previous_layer(tmp_path, small_fs):
    ds = convert(write_pair(tmp_path, poisson_cube(0, shape=(20, 20, 64))),
                 small_fs / "scan.datastack", calibrate=False)
    old = np.arange(400, dtype=np.float32).reshape(1, 20, 20)
    ds.write_layer("maps", {"maps": old}, {"state": "old"})
    files, used = _files(small_fs), shutil.disk_usage(small_fs).used
    big = np.random.default_rng(1).random((8, 20, 20 * 1000)).astype(np.float32)  # 12.8 MB
    # zarr writes a map's chunks concurrently: the failing one returns while the others still
    # run, and used to recreate the removed folder now and then; several tries catch that
    for _ in range(4):
        with pytest.raises(DiskFullError, match="scan.datastack.*disk full"):
            ds.write_layer("maps", {"maps": big}, {"state": "new"})
        layer = DataStack(ds.path).read("maps")
        assert layer.attrs["state"] == "old"
        np.testing.assert_array_equal(layer["maps"], old)
        assert _files(small_fs) == files and shutil.disk_usage(small_fs).used == used
    ds.write_layer("maps", {"maps": old + 1}, {"state": "again"})  # the lock was released
    assert DataStack(ds.path).read("maps").attrs["state"] == "again"


def test_streamed_maps_onto_a_full_disk_keep_the_previous_maps(tmp_path, small_fs):
    from maxrf import maps as mp
    from maxrf.synth import make_scan

    truth = make_scan(tmp_path / "scan", height=40, width=32, seed=2, elements=["Ca", "Fe", "Pb"])
    ds = convert(tmp_path / "scan.rpl", small_fs / "scan.datastack", calibrate=False)
    ds.write_layer("calibration", {"energies": truth.energies},
                   {"gain_keV": truth.gain_keV, "offset_keV": truth.offset_keV,
                    "method": "manual", "peaks": []})
    old = mp.compute_maps(ds, peaks=True, elements=["Fe"], prominence=40.0, store=True)
    want_peaks, want_el = np.asarray(old.peaks.maps), np.asarray(old.elements.maps)
    filler = _fill(small_fs, leave=16 * 1024)  # room for a few chunks, not for the maps
    files, used = _files(small_fs), shutil.disk_usage(small_fs).used
    with pytest.raises(DiskFullError, match="scan.datastack.*disk full"):
        mp.compute_maps(DataStack(ds.path), peaks=True, elements=["Ca", "Fe", "Pb"],
                        prominence=10.0, store=True)
    assert _files(small_fs) == files and shutil.disk_usage(small_fs).used == used
    d = DataStack(ds.path)
    np.testing.assert_array_equal(d.read("peak_maps")["maps"], want_peaks)
    np.testing.assert_array_equal(d.read("element_maps")["maps"], want_el)
    assert d.read("element_maps").attrs["elements"] == ["Fe"]
    filler.unlink()  # with room again, the same call succeeds
    new = mp.compute_maps(DataStack(ds.path), peaks=True, elements=["Ca", "Fe", "Pb"],
                          prominence=10.0, store=True)
    assert DataStack(ds.path).read("element_maps").attrs["elements"] == ["Ca", "Fe", "Pb"]
    assert np.asarray(new.elements.maps).shape[0] == 3
