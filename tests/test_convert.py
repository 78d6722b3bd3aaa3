"""convert: one pass from a ripple pair to a DataStack, checked against numpy/scipy."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from maxrf import DataStack
from maxrf.convert import convert
from maxrf.errors import (
    DiskFullError,
    MaxrfError,
    MissingFileError,
    NotADataStackError,
    OutputExistsError,
    OutputLocationError,
)

from conftest import poisson_cube, write_pair


def nothing_left(folder: Path, keep: set[str]) -> bool:
    return {p.name for p in folder.iterdir()} == keep


@pytest.mark.parametrize("budget", [2**14, 2**18, 2**26])
def test_round_trip_equals_raw_and_numpy(tmp_path, seed, budget):
    cube = poisson_cube(seed, shape=(23, 31, 96))
    rpl = write_pair(tmp_path, cube)
    ds = convert(rpl, calibrate=False, budget=budget)
    assert ds.shape == cube.shape and ds.dtype == np.uint16
    np.testing.assert_array_equal(ds.cube.compute(), cube)
    flat = cube.reshape(-1, cube.shape[2])
    np.testing.assert_array_equal(ds.max_spectrum, flat.max(0))
    np.testing.assert_allclose(ds.sum_spectrum, flat.mean(0), rtol=1e-12)
    idx = np.stack(np.unravel_index(flat.argmax(0), cube.shape[:2]), 1)
    np.testing.assert_array_equal(ds.argmax_pixels, idx)
    # seed accessors
    # the seed's call: the max over pixels of the smoothed spectra (maxrf4u's sigma 7)
    from scipy.ndimage import gaussian_filter1d

    smoothed = gaussian_filter1d(flat.astype(np.float64), 7.0, axis=-1, mode="mirror").max(0)
    np.testing.assert_allclose(ds.max_spectrum(), smoothed, rtol=1e-5, atol=1e-4)
    assert ds.maxrf_cube.shape == cube.shape
    # chunks: blocks of pixels x all channels
    assert ds.cube.chunks[2] == (96,)


@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_smoothing_equals_scipy(tmp_path, sigma):
    cube = poisson_cube(5, shape=(11, 7, 80))
    ds = convert(write_pair(tmp_path, cube), calibrate=False, sigma=sigma, budget=2**15)
    expected = gaussian_filter1d(cube.astype(np.float32), sigma, axis=-1)
    assert ds.dtype == np.float32
    np.testing.assert_allclose(ds.cube.compute(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.max_spectrum, expected.reshape(-1, 80).max(0), rtol=1e-6)


def test_flips(tmp_path):
    cube = poisson_cube(7, shape=(9, 12, 16))
    rpl = write_pair(tmp_path, cube)
    ds = convert(rpl, tmp_path / "f.datastack", calibrate=False, flip_horizontal=True,
                 flip_vertical=True, budget=2**12)
    np.testing.assert_array_equal(ds.cube.compute(), cube[::-1, ::-1])
    flat = cube[::-1, ::-1].reshape(-1, 16)
    idx = np.stack(np.unravel_index(flat.argmax(0), cube.shape[:2]), 1)
    np.testing.assert_array_equal(ds.argmax_pixels, idx)


def test_header_calibration_becomes_energies(tmp_path):
    cube = poisson_cube(1, shape=(4, 5, 50))
    rpl = write_pair(tmp_path, cube, extra="depthscaleorigin\t-0.956\ndepthscaleincrement\t0.010002\n")
    ds = convert(rpl)
    np.testing.assert_allclose(ds.energies, -0.956 + 0.010002 * np.arange(50))
    assert ds.calibration["method"] == "header"


def test_metadata_provenance(tmp_path):
    cube = poisson_cube(1, shape=(4, 5, 20))
    ds = convert(write_pair(tmp_path, cube), calibrate=False, sigma=1.5)
    md = ds.metadata
    assert md["source"]["raw_bytes"] == cube.nbytes
    assert md["options"]["sigma"] == 1.5
    assert md["header"]["width"] == "5"


# ------------------------------------------------------------------ bad input
def test_output_exists(tmp_path):
    rpl = write_pair(tmp_path, poisson_cube(1, shape=(3, 3, 8)))
    convert(rpl, calibrate=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputExistsError, match="scan.datastack.*--overwrite"):
        convert(rpl, calibrate=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # --overwrite replaces it
    cube2 = poisson_cube(2, shape=(3, 3, 8))
    write_pair(tmp_path, cube2)
    ds = convert(rpl, calibrate=False, overwrite=True)
    np.testing.assert_array_equal(ds.cube.compute(), cube2)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_overwrite_refuses_non_datastack(tmp_path):
    rpl = write_pair(tmp_path, poisson_cube(1, shape=(3, 3, 8)))
    (tmp_path / "precious.datastack").mkdir()
    (tmp_path / "precious.datastack" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a datastack"):
        convert(rpl, tmp_path / "precious.datastack", overwrite=True)
    assert (tmp_path / "precious.datastack" / "notes.txt").read_text() == "mine"


def test_output_folder_missing(tmp_path):
    rpl = write_pair(tmp_path, poisson_cube(1, shape=(3, 3, 8)))
    with pytest.raises(OutputLocationError, match="does not exist"):
        convert(rpl, tmp_path / "nowhere" / "x.datastack")
    assert nothing_left(tmp_path, {"scan.rpl", "scan.raw"})


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_folder_not_writable(tmp_path):
    rpl = write_pair(tmp_path, poisson_cube(1, shape=(3, 3, 8)))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OutputLocationError, match="not writable"):
        convert(rpl, ro / "x.datastack")


def test_output_folder_not_writable_checked(tmp_path, monkeypatch):
    """As root the permission bits do not stop us, so check the access test itself."""
    rpl = write_pair(tmp_path, poisson_cube(1, shape=(3, 3, 8)))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == tmp_path else real_access(p, m))
    with pytest.raises(OutputLocationError, match="not writable"):
        convert(rpl, tmp_path / "x.datastack")
    assert nothing_left(tmp_path, {"scan.rpl", "scan.raw"})


def test_disk_full_leaves_nothing(tmp_path, monkeypatch):
    rpl = write_pair(tmp_path, poisson_cube(1, shape=(20, 20, 64)))
    from maxrf import convert as conv

    calls = {"n": 0}
    real = conv.ZarrSink.write_block

    def full(self, block, data):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, block, data)

    monkeypatch.setattr(conv.ZarrSink, "write_block", full)
    with pytest.raises(DiskFullError, match="scan.datastack.*disk full"):
        convert(rpl, calibrate=False, budget=2**15)
    assert nothing_left(tmp_path, {"scan.rpl", "scan.raw"})


def test_missing_scan(tmp_path):
    with pytest.raises(MissingFileError):
        convert(tmp_path / "nope.rpl")
    assert nothing_left(tmp_path, set())


def test_not_a_datastack(tmp_path):
    (tmp_path / "x.datastack").mkdir()
    with pytest.raises(NotADataStackError, match="x.datastack"):
        DataStack(tmp_path / "x.datastack")
    with pytest.raises(MissingFileError):
        DataStack(tmp_path / "y.datastack")


def test_interrupted_convert_leaves_nothing_that_opens(tmp_path):
    """SIGKILL a convert mid-write: no store opens, and the next convert cleans up."""
    cube = poisson_cube(3, shape=(120, 100, 512))
    rpl = write_pair(tmp_path, cube)
    code = (
        "import maxrf.convert as c, time\n"
        "real = c.ZarrSink.write_block\n"
        "def slow(self, b, d):\n"
        "    time.sleep(0.05); return real(self, b, d)\n"
        "c.ZarrSink.write_block = slow\n"
        f"c.convert({rpl!r}, calibrate=False, budget=2**20)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    out = tmp_path / "scan.datastack"
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".scan") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    with pytest.raises(MaxrfError):
        DataStack(out)
    # a new convert removes the dead run's partial folder and succeeds
    ds = convert(rpl, calibrate=False)
    np.testing.assert_array_equal(ds.max_spectrum, cube.reshape(-1, 512).max(0))
    assert nothing_left(tmp_path, {"scan.rpl", "scan.raw", "scan.datastack"})


def test_cli_convert_and_info(tmp_path):
    import json

    rpl = write_pair(tmp_path, poisson_cube(1, shape=(6, 7, 40)))
    exe = [sys.executable, "-m", "maxrf"]
    r = subprocess.run(exe + ["convert", rpl, "--quiet", "--no-calibrate"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(exe + ["info", str(tmp_path / "scan.datastack"), "--json"],
                       capture_output=True, text=True)
    info = json.loads(r.stdout)
    assert info["shape"] == [6, 7, 40] and info["dtype"] == "uint16"
    assert info["calibration"] is None and info["layers"] == []
    # a bad input: one line on stderr, exit 1, no traceback
    r = subprocess.run(exe + ["convert", rpl, "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "scan.datastack" in r.stderr


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_compression_choices_store_the_same_checked_cube(tmp_path, compression):
    # convert writes chunk files itself (store.ChunkWriter); zarr must read them back,
    # verify must check their crc32c, and edge chunks (37 = 2 x 16 + 5 rows) must round-trip
    from maxrf.convert import convert
    from maxrf.errors import CorruptDataError
    from maxrf.info import describe
    from maxrf.io.ripple import write_ripple
    from maxrf.verify import verify

    rng = np.random.default_rng(11)
    cube = rng.poisson(1.5, size=(37, 23, 512)).astype(np.uint16)
    ds = convert(write_ripple(tmp_path / "s.rpl", cube), tmp_path / "s.datastack", calibrate=False,
                 compression=compression, budget=2 * 4 * 4 * 16 * 23 * 512 * 2)
    assert ds.chunks[0] < 37 and 37 % ds.chunks[0] != 0  # edge chunks exist
    np.testing.assert_array_equal(ds.cube.compute(), cube)
    assert verify(ds.path).ok
    ratio = describe(ds.path)["compression_ratio"]
    assert (ratio < 1.0) if compression == "none" else (ratio > 3.0)  # Poisson counts shrink
    assert ds.metadata["options"]["compression"] == compression
    chunk = next(p for p in sorted((ds.path / "cube").rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert not verify(ds.path).ok
    with pytest.raises(CorruptDataError):
        ds.cube.compute()


def test_unknown_compression_refused_before_writing(tmp_path):
    from maxrf.convert import convert
    from maxrf.errors import ParameterError
    from maxrf.io.ripple import write_ripple

    rpl = write_ripple(tmp_path / "s.rpl", np.ones((3, 4, 8), np.uint16))
    with pytest.raises(ParameterError, match="compression"):
        convert(rpl, tmp_path / "s.datastack", compression="gzip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.raw", "s.rpl"]
