"""CRONO HDF5 scans: files written with h5py alone (the layout of the ``cronomaxrf``
package), converted to the same store as the equivalent ripple file."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import maxrf
from maxrf.convert import convert
from maxrf.errors import MissingFileError, ScanFormatError
from maxrf.io import detect_format, open_scan
from maxrf.io.ripple import write_ripple

GAIN, OFFSET = 0.0125, -0.08


def write_crono(path, cube, *, extra=40, seed=0, energies=True, index_dims=3):
    """A CRONO file: more spectra than pixels, in a shuffled order, the grid pointing at them."""
    rng = np.random.default_rng(seed)
    h, w, c = cube.shape
    n = h * w + extra
    spectra = rng.poisson(1.0, size=(n, c)).astype(cube.dtype)  # spectra no pixel selects
    rows = rng.permutation(n)[: h * w]
    spectra[rows] = cube.reshape(-1, c)
    index = rows.reshape(h, w, 1) if index_dims == 3 else rows.reshape(h, w)
    with h5py.File(path, "w") as f:
        f["/XRF/Spectra"] = spectra
        f["/XRF/SpectraSelectedIndex"] = index.astype(np.int32)
        if energies:
            f["/XRF/EnergyVector"] = OFFSET + GAIN * np.arange(c)
        f["/XRF/MotorPositions"] = rng.random((n, 3)) * 1000
        f["/XRF/TubeVoltage"] = np.array([40.0])
        f["/XRF"].attrs["Operator"] = np.array([list("conservator")], dtype="S1")
    return path


def scan_order(h, w, n, rng):
    """The grid index of a serpentine scan with ``n - h*w`` extra spectra interleaved."""
    keep = np.sort(rng.choice(n, size=h * w, replace=False))
    grid = keep.reshape(h, w)
    grid[1::2] = grid[1::2, ::-1]  # every other row is scanned right to left
    return grid.reshape(h, w, 1).astype(np.int32)


def assert_same_store(a, b):
    """Two converted stores hold the same scan: cube, spectra, calibration, options."""
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.cube.compute(), b.cube.compute())
    np.testing.assert_array_equal(a.max_spectrum, b.max_spectrum)
    np.testing.assert_allclose(a.sum_spectrum, b.sum_spectrum, rtol=1e-12)
    np.testing.assert_array_equal(a.argmax_pixels, b.argmax_pixels)
    np.testing.assert_allclose(a.energies, b.energies, rtol=0, atol=1e-9)
    assert a.calibration["method"] == b.calibration["method"] == "header"
    for key in ("options", "source_dtype"):
        assert a.metadata[key] == b.metadata[key]
    np.testing.assert_allclose(a.metadata["header_calibration"], b.metadata["header_calibration"])


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.float32])
def test_crono_converts_like_ripple(tmp_path, dtype):
    rng = np.random.default_rng(3)
    cube = rng.poisson(4.0, size=(11, 14, 96)).astype(dtype)
    crono = write_crono(tmp_path / "scan.HDF5", cube)
    rpl = write_ripple(tmp_path / "same.rpl", cube, calibration=(GAIN, OFFSET))
    assert detect_format(crono) == "crono"
    a = convert(crono, tmp_path / "crono.datastack", calibrate=False)
    b = convert(rpl, tmp_path / "ripple.datastack", calibrate=False)
    assert_same_store(a, b)
    meta = a.metadata
    assert meta["source"]["format"] == "crono"
    assert meta["header"]["n_spectra"] == 11 * 14 + 40
    assert meta["header"]["datasets"]["/XRF/MotorPositions"]["shape"] == [11 * 14 + 40, 3]
    assert meta["header"]["datasets"]["/XRF/TubeVoltage"]["value"] == 40.0
    assert meta["header"]["attributes"]["/XRF"]["Operator"] == "conservator"


def test_crono_blocks_match_fancy_indexing(tmp_path):
    # the reference: cronomaxrf's own recipe, spectra[index[:, :, 0]] in numpy
    rng = np.random.default_rng(5)
    cube = rng.poisson(2.0, size=(9, 12, 40)).astype(np.uint16)
    path = write_crono(tmp_path / "s.h5", cube, extra=500, index_dims=2)
    with h5py.File(path, "r") as f:
        expected = f["/XRF/Spectra"][()][f["/XRF/SpectraSelectedIndex"][()]]
    scan = pickle.loads(pickle.dumps(open_scan(path)))
    np.testing.assert_array_equal(scan.read_block(slice(None), slice(None)), expected)
    np.testing.assert_array_equal(scan.read_block(slice(2, 7), slice(3, 11)), expected[2:7, 3:11])
    assert scan.read_block(slice(2, 2), slice(None)).shape == (0, 12, 40)


def test_crono_without_energies_has_no_header_calibration(tmp_path):
    cube = np.random.default_rng(0).poisson(2.0, size=(4, 5, 32)).astype(np.uint16)
    scan = open_scan(write_crono(tmp_path / "s.HDF5", cube, energies=False))
    assert scan.calibration is None and scan.metadata["energy_vector"] is None


def test_crono_nonlinear_energies_are_not_taken_as_a_line(tmp_path):
    cube = np.zeros((3, 4, 64), np.uint16)
    path = write_crono(tmp_path / "s.HDF5", cube)
    with h5py.File(path, "a") as f:
        ch = np.arange(64)
        f["/XRF/EnergyVector"][...] = 0.01 * ch + 2e-4 * ch**2  # bends by > 0.5 channel
    scan = open_scan(path)
    assert scan.calibration is None
    assert scan.metadata["energy_vector"]["linear_fit_deviation_channels"] > 0.5


@pytest.mark.parametrize("problem", ["index_out_of_range", "negative_index", "no_spectra",
                                     "float_index", "energies_length", "spectra_1d"])
def test_bad_crono_files_are_refused_by_name(tmp_path, problem):
    path = write_crono(tmp_path / "bad.HDF5", np.ones((3, 4, 16), np.uint16), extra=2)
    with h5py.File(path, "a") as f:
        if problem == "index_out_of_range":
            f["/XRF/SpectraSelectedIndex"][1, 2, 0] = 14
        elif problem == "negative_index":
            f["/XRF/SpectraSelectedIndex"][0, 0, 0] = -1
        elif problem == "no_spectra":
            del f["/XRF/Spectra"]
        elif problem == "float_index":
            del f["/XRF/SpectraSelectedIndex"]
            f["/XRF/SpectraSelectedIndex"] = np.zeros((3, 4, 1))
        elif problem == "energies_length":
            del f["/XRF/EnergyVector"]
            f["/XRF/EnergyVector"] = np.arange(15.0)
        elif problem == "spectra_1d":
            del f["/XRF/Spectra"]
            f["/XRF/Spectra"] = np.zeros(14)
    out = tmp_path / "bad.datastack"
    with pytest.raises((ScanFormatError, MissingFileError)) as err:
        convert(path, out, calibrate=False)
    assert "bad.HDF5" in str(err.value)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.HDF5"]


def test_crono_streams_with_bounded_memory(tmp_path):
    # a CRONO file 16x the memory budget converts with peak RSS near the budget
    budget_mb, h, w, c = 8, 256, 256, 1024
    path = tmp_path / "big.HDF5"
    rng = np.random.default_rng(1)
    n = h * w + h * w // 16
    slab = rng.integers(0, 50, size=(4352, c), dtype=np.uint16)
    with h5py.File(path, "w") as f:
        spectra = f.create_dataset("/XRF/Spectra", shape=(n, c), dtype=np.uint16, chunks=(64, c))
        for r0 in range(0, n, slab.shape[0]):
            spectra[r0:r0 + slab.shape[0]] = slab
        f["/XRF/SpectraSelectedIndex"] = scan_order(h, w, n, rng)
        f["/XRF/EnergyVector"] = 0.01 * np.arange(c)
    assert h * w * c * 2 >= 16 * budget_mb * 2**20
    # a small CRONO file, converted first: its peak holds every fixed cost (imports, the
    # compiled kernels loaded on their first call, codecs), none of which grows with the cube
    small = write_crono(tmp_path / "small.HDF5", rng.integers(0, 50, size=(8, 8, c), dtype=np.uint16))
    # one child: warm up, note the peak (VmHWM), convert the big file, note it again
    code = (
        "import h5py, zarr, dask.array, scipy.ndimage, maxrf.convert, maxrf.io.crono, maxrf.calibration\n"
        "hwm = lambda: [int(x.split()[1]) * 1024 for x in open('/proc/self/status')"
        " if x.startswith('VmHWM:')][0]\n"
        f"maxrf.convert.convert({str(small)!r}, calibrate=False)\n"
        "idle = hwm()\n"
        f"maxrf.convert.convert({str(path)!r}, calibrate=False)\n"
        "print(idle, hwm())\n"
    )
    # the child imports the maxrf under test (a worktree's src/, or the installed one)
    env = {"MAXRF_BUDGET_MB": str(budget_mb), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(maxrf.__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    idle, peak = (int(x) for x in run.stdout.split()[-2:])
    # the cube is 128 MB; the work may cost a few blocks and buffers, not the cube
    assert peak - idle < 3 * budget_mb * 2**20 + 40 * 2**20, f"{(peak - idle) / 2**20:.0f} MB over idle"
