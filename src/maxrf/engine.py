"""The one-pass chunk engine.

A cube of ``height x width`` pixels by ``channels`` is streamed in blocks of pixels
with all their channels. Each block is read once; every reduction asked for is fed
from that one read (max and sum spectra at convert; peak maps, fits and region
spectra later). Blocks run on a pool of this process's threads (one per CPU, a sliding
window of blocks in flight, see :func:`_run_local`) or, as dask tasks, on a
``dask.distributed`` cluster when a client is given (or ``MAXRF_SCHEDULER`` names a
scheduler address).

Memory is bounded by the block size (see :func:`block_shape`) times the number of
blocks in flight (one per worker thread), whatever the cube size. The cluster side (the
client, tasks on workers) is in :mod:`maxrf.engine_dask`.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from maxrf import interrupt

# compute and get_client are the engine's too: callers use engine.compute, engine.get_client
from maxrf.engine_dask import compute, get_client, run_distributed  # noqa: F401
from maxrf.errors import ParameterError
from maxrf.memory import release_freed_memory
from maxrf.types import ClientLike

DEFAULT_BUDGET_BYTES = 256 * 2**20
"""Default memory budget of the blocks in flight (bytes); ``MAXRF_BUDGET_MB`` overrides it."""

MAX_BLOCK_BYTES = 16 * 2**20
"""Largest block (and zarr chunk) size: small enough for a quick pixel read in the viewer."""


@dataclass(frozen=True)
class Block:
    """A block of pixels: ``rows`` x ``cols`` of the cube, all channels."""

    index: int
    rows: slice
    cols: slice

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)


class BlockSource(Protocol):
    """Anything the engine can stream: a raw scan, a stored cube."""

    shape: tuple[int, int, int]

    def blocks(self) -> list[Block]: ...

    def read_block(self, block: Block) -> np.ndarray: ...


class BlockSink(Protocol):
    """Receives every block read (e.g. the cube of a store being written)."""

    def write_block(self, block: Block, data: np.ndarray) -> None: ...


class OutputSink(Protocol):
    """Takes a reduction's block results as they arrive (e.g. maps written band by band)."""

    def add(self, block: Block, part: Any) -> None: ...

    def finish(self) -> Any: ...


class Reduction:
    """One result computed from every block of the cube.

    Subclasses implement :meth:`block` (runs on a worker, once per block, on the
    block's data of shape ``(r, c, channels)``) and :meth:`combine` (runs once on the
    caller's side with all partial results). Instances must be picklable.
    """

    def block(self, data: np.ndarray, where: Block) -> Any:
        raise NotImplementedError

    def combine(self, parts: list[tuple[Block, Any]], shape: tuple[int, int]) -> Any:
        raise NotImplementedError

    # The engine feeds partial results as blocks finish, so it never holds them all.
    # The default keeps them in a list for :meth:`combine`; reductions with large
    # per-block results (maps) override these three to fill their output directly.
    def start(self, shape: tuple[int, int]) -> Any:
        return []

    def add(self, acc: Any, where: Block, part: Any) -> Any:
        acc.append((where, part))
        return acc

    def finish(self, acc: Any, shape: tuple[int, int]) -> Any:
        return self.combine(acc, shape)

    def fold(self, parts: list[tuple[Block, Any]], shape: tuple[int, int]) -> Any:
        """:meth:`combine` of a reduction that overrides :meth:`start`, :meth:`add` and
        :meth:`finish`: the parts fed through them, as the engine feeds them."""
        acc = self.start(shape)
        for where, part in parts:
            acc = self.add(acc, where, part)
        return self.finish(acc, shape)


class PixelMaps(Reduction):
    """A reduction that yields ``k`` values per pixel, assembled into ``(k, H, W)`` maps.

    Subclasses implement :meth:`pixel_maps` returning ``(k, r, c)`` for a block.
    """

    dtype = np.float32

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        raise NotImplementedError

    def block(self, data: np.ndarray, where: Block) -> np.ndarray:
        return np.asarray(self.pixel_maps(data, where), dtype=self.dtype)

    def combine(self, parts: list[tuple[Block, Any]], shape: tuple[int, int]) -> np.ndarray:
        return self.fold(parts, shape)

    def start(self, shape: tuple[int, int]) -> Any:
        return shape  # the output is allocated at the first block, when k is known

    def add(self, acc: Any, where: Block, part: Any) -> np.ndarray:
        if isinstance(acc, tuple):
            acc = np.zeros((part.shape[0], *acc), dtype=self.dtype)
        acc[:, where.rows, where.cols] = part
        return acc

    def finish(self, acc: Any, shape: tuple[int, int]) -> np.ndarray:
        return np.zeros((0, *shape), dtype=self.dtype) if isinstance(acc, tuple) else acc


class BandedMaps:
    """Caller-side sink of a :class:`PixelMaps` reduction that never holds its whole output.

    Block results ``(k, r, c)`` are assembled into row bands ``(k, band_rows, W)``; each
    band, once every pixel of it has arrived, is handed to ``flush(rows, band)`` (e.g.
    written to the store) and dropped. Memory is the open bands, about
    ``k * band_rows * W * itemsize`` each; blocks arrive in row-major order (locally in
    order, on a cluster roughly so), so one or two bands are open at a time.

    Parameters
    ----------
    shape : (H, W)
        Image shape (pixels).
    band_rows : int
        Rows per band (see :func:`band_rows`).
    flush : callable
        ``flush(rows: slice, band: ndarray (k, rows, W))``, called once per band, in no
        guaranteed order.
    dtype : numpy dtype
        Of the bands (the reduction's output dtype).
    """

    def __init__(self, shape: tuple[int, int], band_rows: int,
                 flush: Callable[[slice, np.ndarray], None], dtype: Any = np.float32):
        if band_rows < 1:
            raise ParameterError(f"band_rows must be >= 1, got {band_rows}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.band_rows = int(band_rows)
        self.flush = flush
        self.dtype = np.dtype(dtype)
        self.k: int | None = None
        self._open: dict[int, list] = {}  # band index -> [array, pixels still missing]
        self.flushed = 0
        self.peak_open = 0

    def _rows(self, b: int) -> slice:
        return slice(b * self.band_rows, min((b + 1) * self.band_rows, self.shape[0]))

    def add(self, where: Block, part: np.ndarray) -> None:
        """Put one block's ``(k, r, c)`` result into its band(s); flush completed bands."""
        if self.k is None:
            self.k = int(part.shape[0])
        h, w = self.shape
        r0, r1 = where.rows.start, where.rows.stop
        for b in range(r0 // self.band_rows, (r1 - 1) // self.band_rows + 1):
            rows = self._rows(b)
            if b not in self._open:
                n = rows.stop - rows.start
                self._open[b] = [np.empty((self.k, n, w), dtype=self.dtype), n * w]
                self.peak_open = max(self.peak_open, len(self._open))
            entry = self._open[b]
            lo, hi = max(r0, rows.start), min(r1, rows.stop)
            entry[0][:, lo - rows.start : hi - rows.start, where.cols] = part[:, lo - r0 : hi - r0]
            entry[1] -= (hi - lo) * (where.cols.stop - where.cols.start)
            if entry[1] == 0:
                del self._open[b]
                self.flush(rows, entry[0])
                self.flushed += 1

    def finish(self) -> int:
        """Check that every band was completed and flushed; returns ``k``."""
        n_bands = -(-self.shape[0] // self.band_rows) if self.shape[0] else 0
        if self._open or self.flushed != n_bands:
            raise RuntimeError(f"{len(self._open)} map bands incomplete after the pass")
        return int(self.k or 0)


def band_rows(shape: tuple[int, int], k: int, block_rows: int, itemsize: int = 4,
              budget: int | None = None, chunk_bytes: int = 2**20) -> int:
    """Rows of a map band (and of a stored map chunk): a multiple of the block rows.

    About ``chunk_bytes`` per map chunk of ``rows x W`` (big enough that a map is a few
    dozen files, small enough for quick partial reads), and at most a quarter of the
    memory budget for one band of all ``k`` maps.
    """
    h, w = shape
    block_rows = max(1, int(block_rows))
    rows = max(block_rows, chunk_bytes // max(1, w * itemsize))
    cap = budget_bytes(budget) // 4 // max(1, k * w * itemsize)
    rows = min(rows, max(block_rows, cap))
    rows = max(block_rows, rows // block_rows * block_rows)
    return int(min(rows, max(1, h)))


class MaxSpectrum(Reduction):
    """Per channel, the maximum over all pixels and the pixel ``[row, col]`` that holds it.

    Ties go to the first pixel in row-major order, as ``numpy.argmax`` over the
    ``(H * W, C)`` reshaped cube does.
    """

    def __init__(self, width: int):
        self.width = width

    def block(self, data: np.ndarray, where: Block) -> tuple[np.ndarray, np.ndarray]:
        r, c, n = data.shape
        flat = data.reshape(r * c, n)
        values = flat.max(axis=0)
        idx = first_row_equal(flat, values)
        rows = where.rows.start + idx // c
        cols = where.cols.start + idx % c
        return values, rows * self.width + cols

    @staticmethod
    def merge(acc: tuple | None, part: tuple) -> tuple:
        """(values, flat pixel index) of the maxima of ``acc`` and ``part``; ties to the first pixel."""
        if acc is None:
            return part[0].copy(), part[1].copy()
        (best_val, best_idx), (values, flat_idx) = acc, part
        better = (values > best_val) | ((values == best_val) & (flat_idx < best_idx))
        best_val[better] = values[better]
        best_idx[better] = flat_idx[better]
        return best_val, best_idx

    @staticmethod
    def pixels(acc: tuple, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, (C, 2) [row, col] pixels)`` of merged ``(values, flat pixel index)``."""
        return acc[0], np.stack(np.divmod(acc[1], width), axis=1).astype(np.int64)

    def combine(self, parts, shape):
        acc = None
        for _, part in parts:
            acc = self.merge(acc, part)
        return self.pixels(acc, shape[1])


def first_row_equal(flat: np.ndarray, values: np.ndarray, rows_per_step: int = 64) -> np.ndarray:
    """Per column, the first row of ``flat`` equal to ``values`` (its column max): argmax(axis=0).

    ``numpy.argmax(axis=0)`` walks a ``(pixels, channels)`` block column by column at about
    200 MB/s; scanning rows in steps and stopping once every column has its hit runs at
    memory speed, with the same answer (the first maximum in row order).
    """
    n_rows, n_cols = flat.shape
    idx = np.full(n_cols, -1, dtype=np.int64)
    for r0 in range(0, n_rows, rows_per_step):
        hit = flat[r0:r0 + rows_per_step] == values
        new = hit.any(axis=0) & (idx < 0)
        if new.any():
            cols = np.nonzero(new)[0]
            idx[cols] = r0 + hit[:, cols].argmax(axis=0)
            if (idx >= 0).all():
                break
    return idx


class MeanSpectrum(Reduction):
    """Per channel, the mean over all pixels (maxrf4u's "sum spectrum"), in float64."""

    #: rows summed in 32 bits at a time for 8/16-bit counts (65536 x 65535 < 2**32)
    ROWS_32 = 2**15

    def block(self, data: np.ndarray, where: Block) -> np.ndarray:
        flat = data.reshape(-1, data.shape[-1])
        if flat.dtype.kind in "ui":  # exact and twice as fast as converting to float
            wide = np.int64 if flat.dtype.kind == "i" else np.uint64
            if flat.dtype.itemsize > 2:
                return flat.sum(axis=0, dtype=wide)
            # 8/16-bit counts: 32-bit partial sums (exact: at most 2**15 rows of values
            # below 2**16) halve the accumulator traffic of summing in 64 bits
            narrow = np.int32 if flat.dtype.kind == "i" else np.uint32
            total = np.zeros(flat.shape[1], dtype=wide)
            for r0 in range(0, flat.shape[0], self.ROWS_32):
                total += flat[r0:r0 + self.ROWS_32].sum(axis=0, dtype=narrow)
            return total
        return flat.sum(axis=0, dtype=np.float64)

    def combine(self, parts, shape):
        total = np.sum([p.astype(np.float64) for _, p in parts], axis=0)
        return total / (shape[0] * shape[1])


def budget_bytes(budget: int | None = None) -> int:
    """The memory budget (bytes) for blocks in flight: argument, ``MAXRF_BUDGET_MB``, default."""
    if budget is not None:
        if budget <= 0:
            raise ParameterError(f"memory budget must be positive, got {budget} bytes")
        return int(budget)
    env = os.environ.get("MAXRF_BUDGET_MB")
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ParameterError(f"MAXRF_BUDGET_MB must be a number of MB, got {env!r}") from None
        if value <= 0:
            raise ParameterError(f"MAXRF_BUDGET_MB must be positive, got {env!r}")
        return int(value * 2**20)
    return DEFAULT_BUDGET_BYTES


def block_shape(
    shape: tuple[int, int, int], itemsize: int, budget: int | None = None, workers: int = 0
) -> tuple[int, int]:
    """Rows and columns of a block of pixels (all channels) that fits the budget.

    A block is held about four times over while it is processed (raw read, float
    working copy, compressed output, reduction temporaries), once per worker thread, so
    the block size is ``budget / (4 * threads)``, at most :data:`MAX_BLOCK_BYTES`.

    Parameters
    ----------
    shape : (H, W, C)
        Cube shape (pixels, pixels, channels).
    itemsize : int
        Bytes per value of the largest dtype the block takes (4 for float32).
    budget : int, optional
        Memory budget in bytes (see :func:`budget_bytes`).
    workers : int, optional
        Threads processing blocks at once; default the number of CPUs.
    """
    h, w, c = shape
    threads = workers or os.cpu_count() or 1
    target = min(MAX_BLOCK_BYTES, budget_bytes(budget) // (4 * threads))
    pixels = max(1, target // max(1, c * itemsize))
    if pixels >= w:
        return (max(1, min(h, pixels // w)), w)
    side = max(1, int(math.sqrt(pixels)))
    return (min(h, side), min(w, max(1, pixels // side)))


def tile_blocks(height: int, width: int, rows: int, cols: int) -> list[Block]:
    """Blocks covering a ``height x width`` image in row-major tile order."""
    blocks = []
    for r0 in range(0, height, rows):
        for c0 in range(0, width, cols):
            blocks.append(
                Block(len(blocks), slice(r0, min(r0 + rows, height)), slice(c0, min(c0 + cols, width)))
            )
    return blocks


stats = {"runs": 0, "blocks_read": 0, "bytes_read": 0}
"""Counters of this process's engine runs: blocks and bytes of cube data read (benchmarks)."""

_BYTES = "__bytes_read__"


def _process(
    source: BlockSource,
    where: Block,
    reductions: Mapping[str, Reduction],
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    sink: Any = None,
) -> dict[str, Any]:
    data = source.read_block(where)
    nbytes = data.nbytes
    if transform is not None:
        data = transform(data)
    if sink is not None:
        sink.write_block(where, data)
    out = {name: r.block(data, where) for name, r in reductions.items()}
    out[_BYTES] = nbytes
    return out


def run(
    source: BlockSource,
    reductions: Mapping[str, Reduction],
    *,
    client: ClientLike = None,
    progress: bool = False,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    sink: BlockSink | None = None,
    description: str = "blocks",
    outputs: Mapping[str, OutputSink] | None = None,
) -> dict[str, Any]:
    """Stream ``source`` once, feeding every reduction from each block read.

    Parameters
    ----------
    source : BlockSource
        The cube to stream (``.shape``, ``.blocks()``, ``.read_block(block)``).
    reductions : mapping of str to Reduction
        What to compute; the result has the same keys.
    client : dask.distributed.Client, optional
        Run on this cluster; default this process's threads (or the scheduler named by
        ``MAXRF_SCHEDULER``).
    progress : bool
        Show progress on standard error: a bar on a terminal, else a line per 10 %
        (:class:`maxrf.progress.Progress`).
    transform : callable, optional
        Applied to each block after reading (e.g. spectral smoothing) and before the
        sink and reductions see it.
    sink : object with ``write_block(block, data)``, optional
        Receives every (transformed) block, e.g. the store being written.
    outputs : mapping of str to sink, optional
        For the reductions named here, each block's result goes to
        ``outputs[name].add(block, part)`` on the caller's side as it arrives, and the
        result is ``outputs[name].finish()`` (e.g. :class:`BandedMaps` writing maps to
        the store), instead of being assembled in memory.

    Returns
    -------
    dict
        ``{name: reduction.combine(parts, (H, W))}``.
    """
    blocks = source.blocks()
    client = get_client(client)
    shape = source.shape[:2]
    outputs = dict(outputs or {})
    unknown = set(outputs) - set(reductions)
    if unknown:
        raise ParameterError(f"outputs for unknown reductions: {sorted(unknown)}")
    accs = {name: r.start(shape) for name, r in reductions.items() if name not in outputs}

    def feed(where: Block, res: dict[str, Any]) -> None:
        interrupt.check()  # a Ctrl-C swallowed somewhere (a finaliser) still stops the run
        stats["blocks_read"] += 1
        stats["bytes_read"] += res.pop(_BYTES)
        for name, r in reductions.items():
            if name in outputs:
                outputs[name].add(where, res[name])
            else:
                accs[name] = r.add(accs[name], where, res[name])

    if client is not None:
        import dask  # only for a cluster: a local run needs none of it (~16 MB, 0.2 s)

        tasks = [dask.delayed(_process, pure=False)(source, b, reductions, transform, sink)
                 for b in blocks]
        run_distributed(client, blocks, tasks, feed, progress, description)
    else:
        _run_local(blocks, functools.partial(_process, source, reductions=reductions,
                                             transform=transform, sink=sink),
                   feed, progress, description)
    stats["runs"] += 1
    return {name: outputs[name].finish() if name in outputs else r.finish(accs[name], shape)
            for name, r in reductions.items()}


def _run_local(blocks: list[Block], process: Callable[[Block], dict[str, Any]], feed: Callable,
               progress: bool, description: str) -> None:
    """Run on this process's threads, a sliding window of blocks in flight, fed in order.

    At most ``4 x threads`` blocks are submitted ahead of the one being fed, so partial
    results never pile up; a thread that finishes takes the next block at once (waves that
    wait for their slowest block left a core idle at every wave's end). The threads are
    this run's own: when a block fails, or on Ctrl-C, the blocks not started are
    cancelled and the running ones waited for before the error reaches the caller, who
    can then remove what was written knowing nothing writes any more.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    threads = os.cpu_count() or 1
    bar = None
    if progress:
        from maxrf.progress import Progress

        bar = Progress(len(blocks), description)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="maxrf-engine")
    # the blocks already use every core: a BLAS call inside one spawning threads of its own
    # only contends (measured 7x the CPU time of the smoothed max spectrum's products)
    limits = threadpool_limits(1, user_api="blas")
    todo = iter(blocks)
    window: deque = deque()
    try:
        for where in itertools.islice(todo, 4 * threads):
            window.append((where, pool.submit(process, where)))
        while window:
            where, future = window.popleft()
            result = future.result()
            following = next(todo, None)
            if following is not None:  # keep the threads busy while this result is fed
                window.append((following, pool.submit(process, following)))
            feed(where, result)
            if bar is not None:
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        limits.restore_original_limits()
        release_freed_memory()  # the threads' freed blocks, kept by the allocator
        if bar is not None:
            bar.close()
