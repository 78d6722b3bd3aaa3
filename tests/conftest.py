"""Shared fixtures: headless matplotlib, small synthetic cubes."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MAXRF_BUDGET_MB", "64")

#: the slowest test files, slowest first (seconds on the 2-core machine, December 2026).
#: ``make test`` hands whole files to two workers in collection order
#: (``--no-loadscope-reorder``): started first, no long file is left to run alone at the
#: end while the other worker idles (it was: 2 minutes of the 13)
SLOWEST_FILES = (
    "calibration/test_calibration_hypothesis_choice.py",  # 163 s
    "calibration/test_calibration_scatter.py",  # 144 s
    "calibration/test_calibration.py",  # 87 s
    "test_crash.py",  # 73 s
    "calibration/test_calibration_sweep.py",  # 73 s
    "identify/test_identify.py",  # 63 s
    "test_distributed.py",  # 63 s
    "cli/test_cluster_cli.py",  # 56 s
    "maps/test_maps.py",  # 55 s
    "registration/test_register_memory.py",  # 47 s
    "calibration/test_calibration_quality.py",  # 44 s
    "calibration/test_calibration_rivals.py",  # 41 s
    "calibration/test_calibration_consistency.py",  # 37 s
    "test_demo_report.py",  # 29 s
    "test_runs.py",  # 27 s
    "registration/test_coarse_search.py",  # 26 s
    "calibration/test_calibration_precision.py",  # 25 s
    "cli/test_calibrate_cli.py",  # 24 s
    "plot/test_plot_puzzle.py",  # 24 s
    "calibration/test_calibration_electron.py",  # 21 s
    "export/test_export_streaming.py",  # 21 s
    "registration/test_register_levels.py",  # 20 s
    "speckles/test_speckles.py",  # 18 s
    "registration/test_register.py",  # 18 s
    "registration/test_stability.py",  # 17 s
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {f"tests/{name}": i for i, name in enumerate(SLOWEST_FILES)}
    # a stable sort: each file's tests, and the other files, keep their order
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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


PEAK_RSS = ("print([int(l.split()[1]) * 1024 for l in open('/proc/self/status')"
            " if l.startswith('VmHWM:')][0])\n")
"""Prints the process's peak RSS in bytes (VmHWM: Linux carries ru_maxrss across fork+exec)."""


def child_peak_rss(code: str, budget_mb: int) -> int:
    """Peak RSS (bytes) of a fresh interpreter running ``code`` with ``MAXRF_BUDGET_MB``."""
    import subprocess
    import sys

    env = {"MAXRF_BUDGET_MB": str(budget_mb), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code + PEAK_RSS], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def slab_poisson_raw(path, shape: tuple[int, int, int], lam: float = 2.0, slab: int = 32) -> None:
    """Write a little-endian uint16 Poisson cube to ``path`` a slab of rows at a time."""
    rng = np.random.default_rng(0)
    h, w, c = shape
    with open(path, "wb") as f:
        for r0 in range(0, h, slab):
            f.write(rng.poisson(lam, size=(min(slab, h - r0), w, c)).astype("<u2").tobytes())
