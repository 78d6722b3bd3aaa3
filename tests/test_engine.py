"""The one-pass engine against numpy computed on the whole cube."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf import engine
from maxrf.errors import ParameterError

from conftest import ArraySource, poisson_cube


@pytest.mark.parametrize("rows,cols", [(1, 1), (4, 5), (13, 17), (5, 17), (20, 3)])
def test_max_mean_argmax_equal_numpy(seed, rows, cols):
    cube = poisson_cube(seed)
    h, w, c = cube.shape
    src = ArraySource(cube, rows, cols)
    out = engine.run(src, {"max": engine.MaxSpectrum(w), "mean": engine.MeanSpectrum()})
    values, pixels = out["max"]
    flat = cube.reshape(h * w, c)
    np.testing.assert_array_equal(values, flat.max(axis=0))
    # ties (common with integer counts) go to the first pixel in row-major order, as numpy's
    expected_idx = flat.argmax(axis=0)
    np.testing.assert_array_equal(pixels, np.stack(np.unravel_index(expected_idx, (h, w)), 1))
    np.testing.assert_allclose(out["mean"], cube.mean(axis=(0, 1)), rtol=1e-12)
    # every block read exactly once, whatever the number of reductions
    assert sorted(src.reads) == list(range(len(src.blocks())))


def test_pixel_maps_assembled(seed):
    cube = poisson_cube(seed, shape=(9, 11, 32)).astype(np.float32)

    class Band(engine.PixelMaps):
        def pixel_maps(self, data, where):
            return np.stack([data[..., 3:9].sum(-1), data[..., 20:25].max(-1)])

    out = engine.run(ArraySource(cube, 4, 3), {"band": Band()})["band"]
    np.testing.assert_allclose(out[0], cube[..., 3:9].sum(-1), rtol=1e-6)
    np.testing.assert_array_equal(out[1], cube[..., 20:25].max(-1))


def test_transform_and_sink_see_each_block_once():
    cube = poisson_cube(3).astype(np.float32)
    written = {}

    class Sink:
        def write_block(self, block, data):
            assert block.index not in written
            written[block.index] = (block, data)

    src = ArraySource(cube, 5, 6)
    engine.run(src, {"mean": engine.MeanSpectrum()}, transform=lambda d: d * 2, sink=Sink())
    rebuilt = np.zeros_like(cube)
    for block, data in written.values():
        rebuilt[block.rows, block.cols] = data
    np.testing.assert_array_equal(rebuilt, cube * 2)


def test_block_shape_respects_budget():
    shape = (1000, 1200, 4096)
    rows, cols = engine.block_shape(shape, 4, budget=64 * 2**20, workers=2)
    assert rows * cols * 4096 * 4 <= 64 * 2**20 / 8
    assert rows >= 1 and cols >= 1
    # small cubes: whole rows
    assert engine.block_shape((10, 20, 100), 2, budget=2**30)[1] == 20


def test_tile_blocks_cover_image_once():
    blocks = engine.tile_blocks(17, 23, 4, 5)
    cover = np.zeros((17, 23), int)
    for b in blocks:
        cover[b.rows, b.cols] += 1
    assert (cover == 1).all()
    assert [b.index for b in blocks] == list(range(len(blocks)))


def test_bad_budget(monkeypatch):
    with pytest.raises(ParameterError):
        engine.budget_bytes(-1)
    monkeypatch.setenv("MAXRF_BUDGET_MB", "lots")
    with pytest.raises(ParameterError, match="MAXRF_BUDGET_MB"):
        engine.budget_bytes()


def test_stats_count_each_block_once():
    cube = poisson_cube(4)
    before = dict(engine.stats)
    engine.run(ArraySource(cube, 4, 4), {"a": engine.MeanSpectrum(), "b": engine.MaxSpectrum(17)})
    assert engine.stats["bytes_read"] - before["bytes_read"] == cube.nbytes
    assert engine.stats["runs"] - before["runs"] == 1


# ----------------------------------------------------------------------------- banded output
@pytest.mark.parametrize("rows,cols,band", [(2, 17, 2), (4, 5, 8), (3, 4, 5), (13, 17, 13), (1, 1, 7)])
def test_banded_maps_flush_every_band_once(seed, rows, cols, band):
    """Blocks (even in shuffled order, not aligned with the bands) land exactly where the
    in-memory assembly puts them, each band flushed once and only when complete."""
    cube = poisson_cube(seed).astype(np.float32)
    h, w, _ = cube.shape

    class Two(engine.PixelMaps):
        def pixel_maps(self, data, where):
            return np.stack([data[..., :5].sum(-1), data[..., 9:20].max(-1)])

    expected = engine.run(ArraySource(cube, rows, cols), {"m": Two()})["m"]
    got = np.full_like(expected, np.nan)
    seen = []

    def flush(r, b):
        assert r.start not in seen
        seen.append(r.start)
        got[:, r] = b

    sink = engine.BandedMaps((h, w), band, flush)
    out = engine.run(ArraySource(cube, rows, cols), {"m": Two()}, outputs={"m": sink})
    assert out["m"] == 2
    np.testing.assert_array_equal(got, expected)
    assert sorted(seen) == list(range(0, h, band))
    # shuffled arrival (a cluster), same result
    rng = np.random.default_rng(seed)
    blocks = ArraySource(cube, rows, cols).blocks()
    got[:] = np.nan
    seen.clear()
    sink = engine.BandedMaps((h, w), band, flush)
    for i in rng.permutation(len(blocks)):
        b = blocks[i]
        sink.add(b, Two().block(cube[b.rows, b.cols], b))
    sink.finish()
    np.testing.assert_array_equal(got, expected)


def test_banded_maps_incomplete_is_an_error():
    sink = engine.BandedMaps((4, 3), 2, lambda r, b: None)
    sink.add(engine.Block(0, slice(0, 2), slice(0, 3)), np.zeros((1, 2, 3), np.float32))
    with pytest.raises(RuntimeError, match="incomplete"):
        sink.finish()


def test_band_rows_bounded_and_aligned(monkeypatch):
    monkeypatch.setenv("MAXRF_BUDGET_MB", "64")
    for k, w, block in [(24, 2048, 2), (600, 2048, 2), (3, 100, 7), (50, 9000, 45)]:
        r = engine.band_rows((5000, w), k, block)
        assert r % block == 0 or r == 5000
        # one band of all k maps fits a quarter of the budget, unless one block row exceeds it
        assert k * r * w * 4 <= 64 * 2**20 / 4 or r == block
    assert engine.band_rows((10, 20), 2, 4) == 10  # never more rows than the image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32, np.int32])
def test_mean_spectrum_sums_are_exact_at_the_dtype_limits(dtype):
    """Sums of 8/16-bit counts go through 32-bit partial sums: exact even when every
    count is at the dtype's limit over more rows than one partial sum holds."""
    info = np.iinfo(dtype)
    n = 2 * engine.MeanSpectrum.ROWS_32 + 123
    rng = np.random.default_rng(0)
    flat = np.stack([np.full(n, info.max), np.full(n, info.min),
                     rng.integers(info.min, info.max, n, endpoint=True)], axis=1).astype(dtype)
    got = engine.MeanSpectrum().block(flat.reshape(n, 1, 3), None)
    want = [sum(int(v) for v in flat[:, j]) for j in range(3)]  # Python integers: exact
    assert [int(v) for v in got] == want


def test_a_failing_block_returns_only_once_no_block_still_writes():
    """When one block's write fails, other blocks may be mid-write; the error must reach
    the caller only after they have finished, so that the caller's clean-up (removing the
    partial store) is not undone by a late write."""
    import threading
    import time

    cube = poisson_cube(4, shape=(16, 16, 8))
    state = {"active": 0, "done_after_error": 0, "raised": False}
    lock = threading.Lock()

    class SlowSink:
        def write_block(self, block, data):
            if block.index == 1:
                raise OSError(28, "No space left on device")
            with lock:
                state["active"] += 1
            time.sleep(0.2)  # a slow write, in flight when block 1 fails
            with lock:
                state["active"] -= 1
                if state["raised"]:
                    state["done_after_error"] += 1

    with pytest.raises(OSError, match="No space"):
        engine.run(ArraySource(cube, 4, 4), {"mean": engine.MeanSpectrum()}, sink=SlowSink())
    with lock:
        state["raised"] = True
        active = state["active"]
    time.sleep(0.5)
    assert active == 0 and state["done_after_error"] == 0


class BlasThreads(engine.Reduction):
    """Records how many threads the BLAS library would use inside each block."""

    def block(self, data, where):
        from threadpoolctl import threadpool_info

        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    def combine(self, parts, shape):
        return [p for _, p in parts]


def test_blocks_run_on_one_blas_thread_and_the_limit_is_restored():
    from threadpoolctl import threadpool_info, threadpool_limits

    cube = poisson_cube(3, shape=(16, 16, 32))
    with threadpool_limits(2, user_api="blas"):
        before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        seen = engine.run(ArraySource(cube, 4, 4), {"blas": BlasThreads()})["blas"]
        after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert after == before and max(before) == 2
