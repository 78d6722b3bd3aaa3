"""Plain cubes in HDF5 files (written with h5py) and zarr stores, and the format dispatch."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.errors import MissingFileError, ParameterError, ScanFormatError
from maxrf.io import SUPPORTED, detect_format, open_scan
from maxrf.io.ripple import write_ripple

GAIN, OFFSET = 0.02, -0.15


def cube_of(dtype, shape=(9, 13, 48), seed=0):
    rng = np.random.default_rng(seed)
    data = rng.poisson(5.0, size=shape)
    if np.dtype(dtype).kind == "i":
        data = data - 2  # signed counts (background-subtracted cubes) keep their sign
    return data.astype(dtype)


def same_store(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.cube.compute(), b.cube.compute())
    np.testing.assert_array_equal(a.max_spectrum, b.max_spectrum)
    np.testing.assert_allclose(a.sum_spectrum, b.sum_spectrum, rtol=1e-12)
    np.testing.assert_allclose(a.energies, b.energies, atol=1e-9)
    assert a.metadata["options"] == b.metadata["options"]
    assert a.metadata["source_dtype"] == b.metadata["source_dtype"]


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "<i4", ">f8", "|u1", "<f4", "<u8"])
def test_hdf5_cube_converts_like_ripple(tmp_path, dtype):
    cube = cube_of(dtype)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("/entry/data/counts", data=cube, chunks=(4, 5, 48), compression="gzip")
        d.attrs["detector"] = "SDD"
        f["/entry/data/energies"] = OFFSET + GAIN * np.arange(48)
    native = cube.astype(np.dtype(dtype).newbyteorder("="))
    rpl = write_ripple(tmp_path / "same.rpl", native, calibration=(GAIN, OFFSET))
    a = convert(path, tmp_path / "h5.datastack", calibrate=False, dataset="/entry/data/counts")
    b = convert(rpl, tmp_path / "ripple.datastack", calibrate=False)
    same_store(a, b)
    assert a.metadata["header"]["attrs"] == {"detector": "SDD"}
    assert a.metadata["header"]["calibration_from"] == "dataset energies"
    assert a.metadata["source"]["dataset"] == "/entry/data/counts"


def test_hdf5_calibration_attributes_in_ev(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("cube", data=cube_of(np.uint16))
        d.attrs.update(energy_gain=20.0, energy_offset=-150.0, energy_units="eV")
    scan = open_scan(path, "cube")
    assert scan.calibration == pytest.approx((GAIN, OFFSET))
    np.testing.assert_array_equal(scan.read_block(slice(2, 5), slice(1, 12, 2)),
                                  cube_of(np.uint16)[2:5, 1:12:2])


@pytest.mark.parametrize("dtype", ["<u2", ">i2", "<f8"])
def test_zarr_cube_converts_like_ripple(tmp_path, dtype):
    import zarr

    cube = cube_of(dtype, seed=4)
    store = tmp_path / "scan.zarr"
    root = zarr.open_group(store, mode="w")
    arr = root.create_array("maps/cube", shape=cube.shape, dtype=np.dtype(dtype).newbyteorder("="),
                            chunks=(4, 4, 48))
    arr[...] = cube
    arr.attrs.update(gain_keV=GAIN, offset_keV=OFFSET)
    rpl = write_ripple(tmp_path / "same.rpl", cube.astype(np.dtype(dtype).newbyteorder("=")),
                       calibration=(GAIN, OFFSET))
    assert detect_format(store) == "zarr"
    a = convert(store, tmp_path / "z.datastack", calibrate=False, dataset="/maps/cube")
    b = convert(rpl, tmp_path / "ripple.datastack", calibrate=False)
    same_store(a, b)


def test_unknown_format_lists_what_is_supported(tmp_path):
    path = tmp_path / "scan.spe"
    path.write_bytes(b"\x00\x01binary stuff" * 50)
    with pytest.raises(ScanFormatError) as err:
        convert(path, tmp_path / "x.datastack")
    message = str(err.value)
    assert "scan.spe" in message and SUPPORTED in message
    for fmt in ("ripple", "CRONO", ".bcf", "HDF5", "zarr"):
        assert fmt in message
    assert not (tmp_path / "x.datastack").exists()


def test_hdf5_without_dataset_names_the_candidates(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["a/cube"] = np.zeros((2, 3, 4), np.uint16)
        f["b/image"] = np.zeros((2, 3), np.uint16)
    with pytest.raises(ParameterError, match=r"--dataset.*/a/cube"):
        open_scan(path)
    with pytest.raises(ScanFormatError, match=r"no dataset '/nope'.*/a/cube"):
        open_scan(path, "/nope")
    with pytest.raises(ScanFormatError, match=r"3-D"):
        open_scan(path, "b/image")


@pytest.mark.parametrize("case", ["complex", "strings"])
def test_hdf5_non_numeric_cube_refused(tmp_path, case):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["cube"] = (np.zeros((2, 3, 4), np.complex64) if case == "complex"
                     else np.zeros((2, 3, 4), "S3"))
    with pytest.raises(ScanFormatError, match="dtype"):
        open_scan(path, "cube")


def test_dispatch_errors(tmp_path):
    rpl = write_ripple(tmp_path / "r.rpl", cube_of(np.uint16))
    assert detect_format(rpl) == "ripple" and detect_format(tmp_path / "r") == "ripple"
    with pytest.raises(ParameterError, match="--dataset"):
        open_scan(rpl, "/cube")
    with pytest.raises(MissingFileError):
        open_scan(tmp_path / "missing.h5")
    fake = tmp_path / "fake.h5"
    fake.write_text("not hdf5")
    with pytest.raises(ScanFormatError, match="no HDF5 signature"):
        open_scan(fake)
    ds = convert(rpl, tmp_path / "r.datastack", calibrate=False)
    with pytest.raises(ScanFormatError, match="already a maxrf datastack"):
        open_scan(ds.path)


def test_cli_convert_dataset_and_info_name_the_format(tmp_path, capsys):
    from maxrf.cli import main

    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["/a/cube"] = cube_of(np.uint16)
    out = tmp_path / "s.datastack"
    assert main(["convert", str(path), "--dataset", "/a/cube", "-o", str(out), "--no-calibrate",
                 "--quiet", "--compression", "zstd"]) == 0
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "9 x 13 pixels x 48 channels" in text and "(hdf5," in text and str(path.resolve()) in text
    assert main(["convert", str(path), "-o", str(tmp_path / "t.datastack")]) == 1
    assert "--dataset" in capsys.readouterr().err
