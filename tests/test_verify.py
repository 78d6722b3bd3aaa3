"""maxrf verify finds flipped bytes and missing chunks and names them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.verify import verify

from conftest import poisson_cube, write_pair


@pytest.fixture
def ds(tmp_path):
    ds = convert(write_pair(tmp_path, poisson_cube(0, shape=(20, 20, 64))), calibrate=False,
                 budget=2**14)
    ds.write_layer("peak_maps", {"maps": np.ones((2, 20, 20), np.float32)})
    return ds


def chunk_files(ds):
    return sorted(p for p in (ds.path / "cube").rglob("*") if p.is_file() and p.name != "zarr.json")


def test_clean_store_verifies(ds):
    report = verify(ds.path)
    assert report.ok, report.problems
    layer_chunks = [p for p in (ds.path / "layers").rglob("*") if p.is_file() and "c" in p.parts]
    assert report.chunks_checked == len(chunk_files(ds)) + 3 + len(layer_chunks)
    assert report.layers_checked == 1


def test_flipped_byte_named(ds):
    victim = chunk_files(ds)[3]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0x01
    victim.write_bytes(bytes(data))
    report = verify(ds.path)
    rel = "cube/" + victim.relative_to(ds.path / "cube").as_posix()
    assert not report.ok
    assert any(p.startswith(rel) and "corrupt" in p for p in report.problems), report.problems


def test_missing_chunk_named(ds):
    victim = chunk_files(ds)[0]
    victim.unlink()
    report = verify(ds.path)
    assert any("missing" in p for p in report.problems)


def test_layer_damage_found(ds):
    layer_chunk = next(p for p in (ds.path / "layers").rglob("*") if p.is_file() and "c" in p.parts)
    layer_chunk.write_bytes(b"garbage")
    assert any("peak_maps" in p or "layers/" in p for p in verify(ds.path).problems)


def test_cli_exit_codes(ds):
    exe = [sys.executable, "-m", "maxrf", "verify", str(ds.path)]
    assert subprocess.run(exe, capture_output=True).returncode == 0
    victim = chunk_files(ds)[1]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    r = subprocess.run(exe, capture_output=True, text=True)
    assert r.returncode == 2 and "PROBLEM" in r.stdout
