"""Engine sources over a DataStack, a numpy or a dask cube, and single-threaded BLAS
while the engine runs one block per core."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from maxrf import engine
from maxrf.engine import Block, PixelMaps
from maxrf.errors import ParameterError

#: values (pixels x channels) processed at once inside a block: keeps temporaries small
BATCH_VALUES = 2**20


class _ArraySource:
    """Engine source over an in-memory numpy cube (picklable)."""

    def __init__(self, cube: np.ndarray, budget: int | None = None):
        self.cube = cube
        self.shape = tuple(int(s) for s in cube.shape)
        self.block = engine.block_shape(self.shape, max(4, cube.dtype.itemsize), budget)

    def blocks(self) -> list[Block]:
        return engine.tile_blocks(self.shape[0], self.shape[1], *self.block)

    def read_block(self, block: Block) -> np.ndarray:
        return np.ascontiguousarray(self.cube[block.rows, block.cols, :])


class _DaskSource:
    """Engine source over a dask cube: one block per (row, column) chunk, all channels."""

    def __init__(self, cube: Any):
        self.cube = cube
        self.shape = tuple(int(s) for s in cube.shape)

    def blocks(self) -> list[Block]:
        rows = np.concatenate([[0], np.cumsum(self.cube.chunks[0])])
        cols = np.concatenate([[0], np.cumsum(self.cube.chunks[1])])
        out = []
        for r0, r1 in zip(rows[:-1], rows[1:]):
            for c0, c1 in zip(cols[:-1], cols[1:]):
                out.append(Block(len(out), slice(int(r0), int(r1)), slice(int(c0), int(c1))))
        return out

    def read_block(self, block: Block) -> np.ndarray:
        part = self.cube[block.rows, block.cols, :]
        return np.ascontiguousarray(part.compute(scheduler="synchronous"))


@dataclass
class _Input:
    """What a map computation works on: a block source plus the scan's spectra."""

    source: Any
    shape: tuple[int, int, int]
    datastack: Any = None
    energies: np.ndarray | None = None
    max_spectrum: np.ndarray | None = None
    mean_spectrum: np.ndarray | None = None
    array: Any = None

    def require_energies(self, x_keVs: Any) -> np.ndarray:
        if x_keVs is not None:
            e = np.asarray(x_keVs, dtype=float)
        elif self.energies is not None:
            e = self.energies
        else:
            raise ParameterError("x_keVs (channel energies, keV) is needed for a bare cube")
        if e.shape != (self.shape[2],):
            raise ParameterError(
                f"x_keVs has shape {e.shape}, the cube has {self.shape[2]} channels"
            )
        return e

    def get_max(self, y_max: Any) -> np.ndarray:
        if y_max is not None:
            y = np.asarray(y_max, dtype=float)
        elif self.max_spectrum is not None:
            y = self.max_spectrum
        else:
            y = self._array_reduce("max")
        if y.shape != (self.shape[2],):
            raise ParameterError(f"y_max has shape {y.shape}, the cube has {self.shape[2]} channels")
        return y

    def get_mean(self) -> np.ndarray:
        if self.mean_spectrum is None:
            self.mean_spectrum = self._array_reduce("mean")
        return self.mean_spectrum

    def _array_reduce(self, how: str) -> np.ndarray:
        arr = self.array
        if how == "max":
            out = arr.max(axis=(0, 1))
        else:
            out = arr.mean(axis=(0, 1), dtype=np.float64)
        if hasattr(out, "compute"):
            out = out.compute()
        return np.asarray(out, dtype=float)


def _open_input(data: Any, need_energies: bool = True) -> _Input:
    """DataStack, path of one, numpy cube or dask cube -> _Input."""
    from maxrf.store import DataStack

    if isinstance(data, (str, os.PathLike)):
        data = DataStack(data)
    if isinstance(data, DataStack):
        energies = np.asarray(data.energies, dtype=float) if need_energies else None
        return _Input(
            data.block_source(), tuple(data.shape), data, energies,
            np.asarray(data.max_spectrum, dtype=float), np.asarray(data.sum_spectrum, dtype=float),
        )
    if hasattr(data, "dask") and hasattr(data, "chunks") and getattr(data, "ndim", 0) == 3:
        cube = data
        if len(cube.chunks[2]) != 1:
            cube = cube.rechunk({2: -1})
        return _Input(_DaskSource(cube), tuple(int(s) for s in cube.shape), array=cube)
    if isinstance(data, np.ndarray) and data.ndim == 3:
        return _Input(_ArraySource(data), tuple(int(s) for s in data.shape), array=data)
    raise ParameterError(
        "expected a DataStack (or its path) or an (H, W, C) numpy / dask cube, got "
        f"{type(data).__name__}"
    )


def _openblas_handles() -> list[tuple[Any, Any]]:
    """(get, set) num-threads functions of numpy's bundled OpenBLAS, if found."""
    found = []
    libdir = os.path.dirname(np.__file__) + ".libs"
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    found.append((get, put))
                    break
    return found


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run the blocks' matrix products single-threaded (the engine already runs one block
    per core; nested BLAS threads oversubscribe the cores and slow the fit 2-3x)."""
    handles = []
    try:
        handles = _openblas_handles()
    except Exception:  # pragma: no cover - any ctypes trouble: leave BLAS alone
        handles = []
    saved = []
    for get, put in handles:
        try:
            saved.append((put, int(get())))
            put(1)
        except Exception:  # pragma: no cover
            pass
    try:
        yield
    finally:
        for put, n in saved:
            with contextlib.suppress(Exception):
                put(n)


def _run(inp: _Input, reductions: Mapping[str, PixelMaps], client: Any, progress: bool,
         description: str, outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    client = engine.get_client(client)
    ctx = _single_threaded_blas() if client is None else contextlib.nullcontext()
    with ctx:
        return engine.run(inp.source, reductions, client=client, progress=progress,
                          description=description, outputs=outputs)


