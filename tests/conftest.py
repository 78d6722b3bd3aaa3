"""Shared fixtures: headless matplotlib, small synthetic cubes."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MAXRF_BUDGET_MB", "64")


class ArraySource:
    """An in-memory engine source with a chosen block layout (for engine tests)."""

    def __init__(self, cube: np.ndarray, rows: int, cols: int):
        self.cube = cube
        self.shape = cube.shape
        self.rows, self.cols = rows, cols
        self.reads: list[int] = []

    def blocks(self):
        from maxrf.engine import tile_blocks

        return tile_blocks(self.shape[0], self.shape[1], self.rows, self.cols)

    def read_block(self, block):
        self.reads.append(block.index)
        return self.cube[block.rows, block.cols].copy()


@pytest.fixture
def array_source():
    return ArraySource


@pytest.fixture(scope="module")
def client():
    """A real dask.distributed cluster: 2 worker processes, shared by the tests of a module.

    Module-scoped so that its threads and its default client are gone before other modules
    run in the same process (memory measurements, dask's default scheduler)."""
    import distributed
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(params=[0, 1, 2])
def seed(request):
    return request.param


def poisson_cube(seed: int, shape=(13, 17, 64), lam=3.0, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(lam, size=shape).astype(dtype)


def write_pair(folder, cube: np.ndarray, name: str = "scan", extra: str = "") -> str:
    """Write a vector-ordered little-endian ripple pair with numpy and a hand-made header."""
    from pathlib import Path

    folder = Path(folder)
    h, w, c = cube.shape
    kind = {"u": "unsigned", "i": "signed", "f": "float"}[cube.dtype.kind]
    header = (
        f"key\tvalue\nwidth\t{w}\nheight\t{h}\ndepth\t{c}\noffset\t0\n"
        f"data-length\t{cube.dtype.itemsize}\ndata-type\t{kind}\n"
        f"byte-order\tlittle-endian\nrecord-by\tvector\n{extra}"
    )
    (folder / f"{name}.rpl").write_text(header)
    cube.astype(cube.dtype.newbyteorder("<")).tofile(folder / f"{name}.raw")
    return str(folder / f"{name}.rpl")
