"""The seed's smoothed max spectrum on demand (issue 17): convert skips it by default; the
first ``ds.max_spectrum()`` computes it in one pass over the stored cube and stores it.

The reference is scipy's Gaussian (``gaussian_filter1d``, mode mirror, sigma
SEED_SIGMA) of every pixel's spectrum, maximised over the pixels."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from maxrf import DataStack, engine
from maxrf.cli import main
from maxrf.convert import convert
from maxrf.seed_spectrum import SEED_SIGMA
from maxrf.verify import verify

from conftest import poisson_cube, write_pair

SHAPE = (19, 23, 96)


def reference(cube: np.ndarray) -> np.ndarray:
    flat = cube.reshape(-1, cube.shape[-1]).astype(np.float64)
    return gaussian_filter1d(flat, SEED_SIGMA, axis=-1, mode="mirror").max(axis=0)


@pytest.fixture
def passes(monkeypatch):
    """Counts the engine's passes over a cube (every one goes through engine.run)."""
    count = {"n": 0}
    real = engine.run

    def counting(*args, **kw):
        count["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(engine, "run", counting)
    return count


def test_default_convert_stores_no_smoothed_max(tmp_path, monkeypatch):
    from maxrf import kernels

    def smoothing(*args, **kw):
        raise AssertionError("a default convert smoothed spectra")

    # the walk without the smoothed part: neither smoothing kernel may run
    monkeypatch.setattr(kernels, "spectra_and_smoothed_max", smoothing)
    monkeypatch.setattr(kernels, "smoothed_max", smoothing)
    cube = poisson_cube(21, shape=SHAPE)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, budget=2**14)
    np.testing.assert_array_equal(ds.max_spectrum, cube.reshape(-1, SHAPE[2]).max(axis=0))
    assert ds.smoothed_max_spectrum is None
    assert not (ds.path / "smoothed_max_spectrum").exists()


def test_first_call_computes_in_one_pass_and_stores(tmp_path, passes):
    cube = poisson_cube(22, shape=SHAPE)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, budget=2**14)
    passes["n"] = 0
    raw = ds.max_spectrum  # the attribute: the stored raw maximum, never a pass
    np.testing.assert_array_equal(raw, cube.reshape(-1, SHAPE[2]).max(axis=0))
    assert ds.smoothed_max_spectrum is None and passes["n"] == 0

    ref = reference(cube)
    np.testing.assert_allclose(raw(), ref, rtol=1e-5, atol=1e-4)
    assert passes["n"] == 1
    again = DataStack(ds.path)  # stored: a new reader finds it and does no pass
    np.testing.assert_allclose(again.smoothed_max_spectrum, ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(again.max_spectrum(), ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ds.max_spectrum(), ref, rtol=1e-5, atol=1e-4)
    assert passes["n"] == 1
    # nothing else replaced, nothing left behind, and the store still verifies
    np.testing.assert_array_equal(again.max_spectrum, raw)
    assert again.layers == []
    assert [p.name for p in (ds.path / "layers").iterdir()] == []
    assert verify(ds.path).problems == []
    chunk = ds.path / "smoothed_max_spectrum" / "c" / "0"  # verify checks it like the others
    chunk.write_bytes(b"\0" * chunk.stat().st_size)
    assert any("smoothed_max_spectrum" in p for p in verify(ds.path).problems)


def test_read_only_store_answers_without_storing(tmp_path, monkeypatch, passes):
    cube = poisson_cube(23, shape=SHAPE)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, budget=2**14)
    before = sorted(p.name for p in ds.path.rglob("*"))
    real_open = os.open
    store = ds.path.resolve()

    def read_only(path, flags, *args, **kw):  # as a read-only file system answers writes
        if Path(path).resolve().is_relative_to(store) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", read_only)
    passes["n"] = 0
    np.testing.assert_allclose(ds.max_spectrum(), reference(cube), rtol=1e-5, atol=1e-4)
    assert passes["n"] == 1
    assert ds.smoothed_max_spectrum is None
    assert sorted(p.name for p in ds.path.rglob("*")) == before


def test_a_failed_write_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    cube = poisson_cube(24, shape=SHAPE)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, budget=2**14)

    def crash(*args, **kw):
        raise OSError(errno.EIO, "I/O error while renaming")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="I/O error"):
        ds.max_spectrum()
    monkeypatch.undo()
    assert ds.smoothed_max_spectrum is None
    assert [p.name for p in (ds.path / "layers").iterdir()] == []
    np.testing.assert_allclose(ds.max_spectrum(), reference(cube), rtol=1e-5, atol=1e-4)
    assert DataStack(ds.path).smoothed_max_spectrum is not None


def test_seed_max_option_stores_it_during_convert(tmp_path, passes):
    cube = poisson_cube(25, shape=SHAPE)
    rpl = write_pair(tmp_path, cube)
    assert main(["convert", rpl, "--no-calibrate", "--quiet", "--seed-max"]) == 0
    ds = DataStack(Path(rpl).with_suffix(".datastack"))
    ref = reference(cube)
    np.testing.assert_allclose(ds.smoothed_max_spectrum, ref, rtol=1e-5, atol=1e-4)
    passes["n"] = 0
    np.testing.assert_allclose(ds.max_spectrum(), ref, rtol=1e-5, atol=1e-4)
    assert passes["n"] == 0
    # the old explicit form of the default still parses and stores none
    assert main(["convert", rpl, "--no-calibrate", "--quiet", "--overwrite", "--no-seed-max"]) == 0
    assert DataStack(ds.path).smoothed_max_spectrum is None


def test_a_smoothed_store_answers_its_max_spectrum(tmp_path, passes):
    cube = poisson_cube(26, shape=SHAPE)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, sigma=2.0, budget=2**14)
    passes["n"] = 0
    expected = gaussian_filter1d(cube.astype(np.float32), 2.0, axis=-1).reshape(-1, SHAPE[2]).max(0)
    np.testing.assert_allclose(ds.max_spectrum(), expected, rtol=1e-6)
    assert passes["n"] == 0 and ds.smoothed_max_spectrum is None


def test_calibrating_a_datastack_reads_the_raw_max_without_a_pass(tmp_path, monkeypatch, passes):
    from maxrf.calibration import auto

    seen = {}

    def recording(sum_y, max_y, **kw):
        seen["max"] = np.asarray(max_y)
        raise auto.CalibrationError("recorded")

    cube = poisson_cube(27, shape=SHAPE)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, budget=2**14)
    monkeypatch.setattr(auto, "auto_calibrate", recording)
    passes["n"] = 0
    with pytest.raises(auto.CalibrationError, match="recorded"):
        auto.calibrate(ds)
    np.testing.assert_array_equal(seen["max"], cube.reshape(-1, SHAPE[2]).max(axis=0))
    assert passes["n"] == 0 and ds.smoothed_max_spectrum is None
