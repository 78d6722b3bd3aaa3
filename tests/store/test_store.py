"""DataStack layers: atomic replacement, no growth, one writer at a time, version checks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from maxrf import DataStack
from maxrf.convert import convert
from maxrf.errors import (
    ConcurrentWriteError,
    CorruptDataError,
    DataStackVersionError,
    LayerMissingError,
    NotADataStackError,
)
from maxrf.info import folder_bytes
from maxrf.store import write_layer, writer_lock

from conftest import poisson_cube, write_pair


@pytest.fixture
def ds(tmp_path):
    return convert(write_pair(tmp_path, poisson_cube(0, shape=(10, 12, 32))), calibrate=False)


def test_layer_round_trip(ds):
    maps = np.random.default_rng(0).random((3, 10, 12)).astype(np.float32)
    ds.write_layer("peak_maps", {"maps": maps, "slices": np.array([[1, 2, 3]])},
                   {"labels": ["a", "b", "c"], "gain": np.float64(0.5)})
    layer = ds.read("peak_maps")
    np.testing.assert_array_equal(layer["maps"], maps)
    assert layer.attrs["labels"] == ["a", "b", "c"] and layer.attrs["gain"] == 0.5
    assert ds.layers == ["peak_maps"]
    # a second DataStack on the same path sees it (several readers)
    assert DataStack(ds.path).read("peak_maps")["maps"].shape == (3, 10, 12)


def test_missing_layer(ds):
    with pytest.raises(LayerMissingError, match="hotmax.*not been computed"):
        ds.read("hotmax")
    with pytest.raises(LayerMissingError, match="calibration"):
        ds.energies  # noqa: B018


def test_recompute_does_not_grow(ds):
    rng = np.random.default_rng(1)
    ds.write_layer("maps", {"m": rng.random((5, 10, 12))})
    size = folder_bytes(ds.path)
    for i in range(6):
        ds.write_layer("maps", {"m": rng.random((5, 10, 12))}, {"i": i})
    assert folder_bytes(ds.path) <= size * 1.05
    assert ds.read("maps").attrs["i"] == 5
    assert len(list((ds.path / "layers").iterdir())) == 1


def test_cube_untouched_by_layer_writes(ds):
    cube_files = {p: p.stat().st_mtime_ns for p in (ds.path / "cube").rglob("*") if p.is_file()}
    ds.write_layer("x", {"a": np.ones(3)})
    assert {p: p.stat().st_mtime_ns for p in (ds.path / "cube").rglob("*") if p.is_file()} == cube_files


def test_second_writer_gets_clear_error(ds):
    with writer_lock(ds.path):
        with pytest.raises(ConcurrentWriteError, match="another process"):
            write_layer(ds.path, "x", {"a": np.ones(3)})
    write_layer(ds.path, "x", {"a": np.ones(3)})  # free again


def test_two_processes_one_wins(ds):
    code = (
        "import sys, time, numpy as np\n"
        "import maxrf.store.layers as s  # where write_layer calls it\n"
        "real = s.write_array\n"
        "def slow(*a, **k):\n"
        "    time.sleep(1.0); return real(*a, **k)\n"
        "s.write_array = slow\n"
        "from maxrf.errors import ConcurrentWriteError\n"
        "try:\n"
        f"    s.write_layer({str(ds.path)!r}, 'x', {{'a': np.full(4, float(sys.argv[1]))}})\n"
        "except ConcurrentWriteError:\n"
        "    sys.exit(3)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)]) for i in (1, 2)]
    codes = sorted(p.wait() for p in procs)
    assert codes == [0, 3]
    value = ds.read("x")["a"]
    assert value[0] in (1.0, 2.0) and (value == value[0]).all()


def test_readers_see_consistent_layers_during_rewrites(ds):
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            try:
                layer = ds.read("v")
            except Exception as exc:  # noqa: BLE001
                bad.append(exc)
                continue
            a, b = layer["a"], layer["b"]
            if not (a[0] == b[0] == layer.attrs["k"] and (a == a[0]).all()):
                bad.append((a[0], b[0], layer.attrs["k"]))

    ds.write_layer("v", {"a": np.zeros(1000), "b": np.zeros(10)}, {"k": 0})
    t = threading.Thread(target=reader)
    t.start()
    for k in range(1, 30):
        ds.write_layer("v", {"a": np.full(1000, k), "b": np.full(10, k)}, {"k": k})
    stop.set()
    t.join()
    assert not bad


def test_killed_layer_write_keeps_previous_state(ds):
    ds.write_layer("maps", {"m": np.zeros((2, 10, 12))}, {"version": "old"})
    code = (
        "import time, numpy as np\n"
        "import maxrf.store.layers as s  # where write_layer calls it\n"
        "real = s.write_array\n"
        "def slow(*a, **k):\n"
        "    r = real(*a, **k); time.sleep(0.3); return r\n"
        "s.write_array = slow\n"
        f"s.write_layer({str(ds.path)!r}, 'maps', {{f'm{{i}}': np.ones((2, 10, 12)) for i in range(20)}},"
        " {'version': 'new'})\n"
    )
    for delay in (0.2, 0.6, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(delay + 1.0)  # interpreter start-up, then part of the writes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        layer = DataStack(ds.path).read("maps")
        assert layer.attrs["version"] == "old"
        np.testing.assert_array_equal(layer["m"], 0)
    # the next write removes the dead writer's folders: the store does not grow
    ds.write_layer("maps", {"m": np.zeros((2, 10, 12))}, {"version": "old"})
    assert len(list((ds.path / "layers").iterdir())) == 1


def test_version_and_format_checks(ds):
    manifest = json.loads((ds.path / "maxrf.json").read_text())
    manifest["format_version"] = 99
    (ds.path / "maxrf.json").write_text(json.dumps(manifest))
    with pytest.raises(DataStackVersionError, match="version 99"):
        DataStack(ds.path)
    (ds.path / "maxrf.json").write_text("{not json")
    with pytest.raises(NotADataStackError, match="unreadable"):
        DataStack(ds.path)


def test_flipped_byte_in_chunk_is_detected(ds):
    chunk = next(p for p in sorted((ds.path / "cube").rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="cube.*corrupt"):
        DataStack(ds.path).cube.compute()


# ----------------------------------------------------------------------------- streaming writes
def test_layer_writer_streams_regions_and_commits_layers_together(ds):
    from maxrf.store import LayerWriter

    rng = np.random.default_rng(5)
    a = rng.random((3, 10, 12)).astype(np.float32)
    b = rng.random((10, 12)).astype(np.float32)
    ds.write_layer("x", {"m": np.zeros((3, 10, 12), np.float32)}, {"state": "old"})
    with LayerWriter(ds.path) as lw:
        m = lw.create("x", "m", a.shape, np.float32, (1, 4, 12))
        n = lw.create("y", "n", b.shape, np.float32, (4, 12))
        for r0 in (8, 0, 4):  # bands in any order, the last one short
            rows = slice(r0, min(r0 + 4, 10))
            lw.write(m, (slice(None), rows), a[:, rows])
            lw.write(n, (rows,), b[rows])
        lw.put("x", "small", np.arange(3))
        # nothing visible before the commit
        assert DataStack(ds.path).read("x").attrs["state"] == "old" and "y" not in ds.layers
        lw.commit({"x": {"state": "new"}, "y": {"state": "new"}})
    x, y = ds.read("x"), ds.read("y")
    np.testing.assert_array_equal(x["m"], a)
    np.testing.assert_array_equal(y["n"], b)
    np.testing.assert_array_equal(x["small"], np.arange(3))
    assert x.attrs["state"] == y.attrs["state"] == "new"
    assert len(list((ds.path / "layers").iterdir())) == 2  # the old version of x is gone


def test_layer_writer_without_commit_leaves_previous_state(ds):
    from maxrf.store import LayerWriter

    ds.write_layer("x", {"m": np.zeros((2, 10, 12))}, {"state": "old"})
    with pytest.raises(RuntimeError, match="boom"), LayerWriter(ds.path) as lw:
        m = lw.create("x", "m", (2, 10, 12), np.float64)
        lw.write(m, (slice(None), slice(0, 5)), np.ones((2, 5, 12)))
        raise RuntimeError("boom")
    layer = ds.read("x")
    assert layer.attrs["state"] == "old" and (layer["m"] == 0).all()
    assert len(list((ds.path / "layers").iterdir())) == 1
    # and the lock was released
    ds.write_layer("x", {"m": np.ones((2, 10, 12))}, {"state": "new"})


def test_layer_writer_disk_full_mid_stream(ds, monkeypatch):
    import errno

    import maxrf.store as store
    from maxrf.errors import DiskFullError

    ds.write_layer("x", {"m": np.zeros((2, 10, 12))}, {"state": "old"})
    calls = {"n": 0}
    real = store.layers.write_region

    def full(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(store.layers, "write_region", full)
    with pytest.raises(DiskFullError, match="disk full"), store.LayerWriter(ds.path) as lw:
        m = lw.create("x", "m", (2, 10, 12), np.float64, (1, 5, 12))
        for r0 in (0, 5):
            lw.write(m, (slice(None), slice(r0, r0 + 5)), np.ones((2, 5, 12)))
        lw.commit({"x": {"state": "new"}})
    layer = ds.read("x")
    assert layer.attrs["state"] == "old" and (layer["m"] == 0).all()
    assert len(list((ds.path / "layers").iterdir())) == 1


def test_layer_writer_needs_with_and_one_writer(ds):
    from maxrf.store import LayerWriter

    with pytest.raises(Exception, match="context manager"):
        LayerWriter(ds.path).create("x", "m", (2,), np.float32)
    with LayerWriter(ds.path), pytest.raises(ConcurrentWriteError):
        ds.write_layer("x", {"m": np.zeros(2)})


def test_lazy_read_equals_eager_and_notices_replacement(ds):
    rng = np.random.default_rng(2)
    maps = rng.random((4, 10, 12)).astype(np.float32)
    ds.write_layer("peak_maps", {"maps": maps, "chi2": maps[0]}, {"labels": list("abcd")})
    lazy = ds.read("peak_maps", lazy=True)
    arr = lazy["maps"]
    assert arr.shape == (4, 10, 12) and arr.dtype == np.float32 and len(arr) == 4
    np.testing.assert_array_equal(arr[2], maps[2])
    np.testing.assert_array_equal(arr[1:3, 2:5], maps[1:3, 2:5])
    np.testing.assert_array_equal(np.asarray(arr), maps)
    np.testing.assert_array_equal(np.stack(list(arr)), maps)
    assert lazy.attrs["labels"] == list("abcd")
    ds.write_layer("peak_maps", {"maps": maps + 1}, {})
    with pytest.raises(LayerMissingError, match="replaced"):
        arr[0]
    with pytest.raises(LayerMissingError, match="not been computed"):
        ds.read("nothing", lazy=True)


def test_lazy_read_names_damaged_chunk(ds):
    ds.write_layer("x", {"m": np.random.default_rng(0).random((2, 10, 12))})
    arr = ds.read("x", lazy=True)["m"]
    chunk = next(p for p in (ds.path / "layers").rglob("c/1/0/0") if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    np.testing.assert_array_equal(arr[0].shape, (10, 12))  # the sound map reads
    with pytest.raises(CorruptDataError, match="'m' is damaged"):
        arr[1]


def test_store_state_and_stored_arrays_describe_the_store(ds):
    """The store's own reading of its manifest and arrays, against what was written."""
    import json as _json

    from maxrf.store import check_chunks, open_datastack, store_state, stored_array

    maps = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    ds.write_layer("peak_maps", {"maps": maps}, {"labels": ["a", "b"]})
    state = store_state(ds.path)
    manifest = _json.loads((ds.path / "maxrf.json").read_text())  # read independently
    assert state.created == manifest["created"] and state.maxrf_version == manifest["maxrf_version"]
    entry = state.layers["peak_maps"]
    assert entry.dir == manifest["layers"]["peak_maps"]["dir"] and entry.arrays == ("maps",)
    assert entry.attrs == {"labels": ["a", "b"]} and entry.version == 1
    cube = stored_array(ds.path, "cube")
    assert cube.shape == ds.shape and cube.chunks == ds.chunks
    assert len(cube.chunk_coords()) == int(np.ceil(10 / ds.chunks[0]) * np.ceil(12 / ds.chunks[1]))
    arr = stored_array(ds.path, f"{entry.dir}/maps")
    np.testing.assert_array_equal(arr.read(), maps)
    assert stored_array(ds.path, "no_such_array") is None
    assert check_chunks(cube.folder, "cube", cube.chunk_coords()) == []
    chunk = next(p for p in cube.folder.iterdir() if p.name.startswith("c."))
    chunk.unlink()
    problems = check_chunks(cube.folder, "cube", cube.chunk_coords())
    assert len(problems) == 1 and "chunk file missing" in problems[0]
    assert open_datastack(ds) is ds and open_datastack(str(ds.path)).path == ds.path


def test_create_cube_and_finish_store_make_a_valid_store(tmp_path):
    from maxrf.engine import Block
    from maxrf.store import create_cube, finish_store, is_datastack

    out = tmp_path / "new.datastack"
    cube = np.random.default_rng(3).integers(0, 50, (6, 5, 16)).astype(np.uint16)
    sink = create_cube(out, cube.shape, cube.dtype, (4, 5))
    assert not is_datastack(out)  # not valid before finish_store
    for r0 in (0, 4):
        sink.write_block(Block(0, slice(r0, min(r0 + 4, 6)), slice(0, 5)), cube[r0:r0 + 4])
    finish_store(out, {"max_spectrum": cube.max(axis=(0, 1)).astype(np.float64),
                       "sum_spectrum": cube.mean(axis=(0, 1)),
                       "argmax_pixels": np.zeros((16, 2), np.int64)}, {"note": "test"})
    assert is_datastack(out)
    ds = DataStack(out)
    np.testing.assert_array_equal(ds.cube.compute(), cube)
    np.testing.assert_array_equal(ds.max_spectrum, cube.max(axis=(0, 1)))
    assert ds.metadata == {"note": "test"} and ds.chunks == (4, 5, 16)


def test_zero_map_chunks_are_stored_and_verify(tmp_path):
    """zarr 3 skips a chunk that holds only the fill value; verify would then report it
    missing (seen on the 28 GB benchmark: a class-label map that is 0 over whole tiles)."""
    from maxrf.store import LayerWriter
    from maxrf.verify import verify

    ds = convert(write_pair(tmp_path, poisson_cube(0, shape=(10, 12, 32))), calibrate=False)
    labels = np.zeros((10, 12), dtype=np.int16)  # one class everywhere: all zero
    ds.write_layer("z", {"maps": np.zeros((2, 10, 12), np.float32), "labels": labels})
    with LayerWriter(ds.path) as lw:  # the streamed path of maps, decomposition, clusters
        a = lw.create("s", "m", (10, 12), np.float32, (5, 6))
        lw.write(a, (slice(0, 10), slice(0, 12)), np.zeros((10, 12), np.float32))
        lw.commit({"s": {}})
    report = verify(ds.path)
    assert report.ok, report.problems
    np.testing.assert_array_equal(DataStack(ds.path).read("z")["labels"], 0)


def test_cube_chunks_are_files_of_one_folder_and_old_nested_stores_still_verify(tmp_path,
                                                                                 monkeypatch):
    from maxrf.store import cube as cube_module
    from maxrf.verify import verify

    cube = poisson_cube(3, shape=(10, 12, 64))
    new = convert(write_pair(tmp_path, cube), tmp_path / "new.datastack", calibrate=False,
                  budget=2**15)
    files = sorted(p.name for p in (new.path / "cube").iterdir())
    assert all(not (new.path / "cube" / f).is_dir() for f in files)
    rows, cols = (-(-n // c) for n, c in zip(cube.shape[:2], new.chunks[:2]))
    assert files == sorted([f"c.{i}.{j}.0" for i in range(rows) for j in range(cols)] + ["zarr.json"])
    # a store written with zarr's default nested keys (earlier maxrf versions)
    monkeypatch.setattr(cube_module, "CUBE_KEY_SEPARATOR", "/")
    old = convert(write_pair(tmp_path, cube, name="old"), tmp_path / "old.datastack",
                  calibrate=False, budget=2**15)
    assert (old.path / "cube" / "c" / "1" / "0" / "0").is_file()
    for ds in (new, old):
        np.testing.assert_array_equal(DataStack(ds.path).cube.compute(), cube)
        assert verify(ds.path).ok
    victim = old.path / "cube" / "c" / "1" / "0" / "0"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    problems = verify(old.path).problems
    assert any(p.startswith("cube/c/1/0/0") and "corrupt" in p for p in problems), problems
    (new.path / "cube" / "c.1.0.0").unlink()
    problems = verify(new.path).problems
    assert any(p.startswith("cube/c.1.0.0") and "missing" in p for p in problems), problems
