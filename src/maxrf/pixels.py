"""Spectra of chosen pixels: one home for reading a set of pixels or a mask from a cube.

Speckle spectra (:mod:`maxrf.speckles`), the hotmax spectra (:mod:`maxrf.hotmax`) and the
viewer's pixel and region spectra all read here. The pixels are grouped by the chunk
(block of pixels x all channels) that holds them, each chunk is read once and reduced at
once to its selected pixels (or their sum), so memory is bounded by a chunk per worker plus
the result, whatever the scan's size.

What can be read: a numpy cube ``(H, W, C)`` (plain indexing), a dask array (its blocks,
on the cluster given or the local threads), a :class:`~maxrf.store.DataStack` (its stored
cube, through dask), another chunked array with a 3-D ``chunks`` attribute (e.g. zarr), or a
block source (``.shape``, ``.chunks`` and ``.read_block(block)``, read in this process: the
viewer's chunk cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from maxrf.engine import Block
from maxrf.errors import ParameterError
from maxrf.types import ArrayLike, ClientLike

if TYPE_CHECKING:
    from maxrf.store import DataStack

__all__ = ["ChunkedSource", "mask_pixels", "read_spectra", "region_spectra"]


class ChunkedSource(Protocol):
    """A cube read a chunk at a time: chunks are ``(rows, cols, C)`` blocks of pixels."""

    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]

    def read_block(self, block: Block) -> np.ndarray: ...


def mask_pixels(mask: ArrayLike | Any, shape: tuple[int, int],
                offset: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (raster order) of the pixels a mask selects in a scan of ``shape``.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W) or smaller, or a scikit-image region
        Non-zero = selected. A mask smaller than the scan is a bounding box placed at
        ``offset``; a region (anything with ``image`` and ``bbox``, e.g. from
        :func:`skimage.measure.regionprops`) brings its own offset.
    shape : (int, int)
        The scan's pixel grid ``(H, W)``.
    offset : (int, int), optional
        ``(row, col)`` of the mask's top-left pixel in the scan.

    Returns
    -------
    rows, cols : numpy.ndarray of int64
        Pixel coordinates, in raster order.

    Raises
    ------
    ParameterError
        If the mask is not 2-D, falls outside the scan, is smaller than the scan without an
        offset, or selects no pixel.
    """
    if hasattr(mask, "image") and hasattr(mask, "bbox"):  # a regionprops region
        mask, offset = mask.image, tuple(mask.bbox[:2])
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ParameterError(f"mask must be a 2-D (rows, cols) array, got shape {mask.shape}")
    shape = (int(shape[0]), int(shape[1]))
    if offset is None and mask.shape != shape and mask.shape[0] <= shape[0] \
            and mask.shape[1] <= shape[1]:
        raise ParameterError(
            f"mask {mask.shape} is smaller than the scan {shape}: a region's bounding "
            f"box (p.image) needs offset=p.bbox[:2] (or pass the region: mask=p)")
    r0, c0 = (0, 0) if offset is None else (int(v) for v in offset)
    if offset is not None:
        h, w = mask.shape
        if r0 < 0 or c0 < 0 or r0 + h > shape[0] or c0 + w > shape[1]:
            raise ParameterError(f"mask {mask.shape} at offset {(r0, c0)} falls outside the "
                                 f"scan {shape}")
    elif mask.shape != shape:
        raise ParameterError(f"mask shape {mask.shape} does not match the cube's pixel grid {shape}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ParameterError("mask selects no pixels")
    return rows.astype(np.int64) + r0, cols.astype(np.int64) + c0


def _chunk_groups(rows: np.ndarray, cols: np.ndarray, row_chunks: tuple[int, ...],
                  col_chunks: tuple[int, ...]) -> Iterator[tuple[int, int, np.ndarray, int, int]]:
    """``(i, j, sel, row0, col0)`` for every chunk ``(i, j)`` holding selected pixels:
    ``sel`` indexes ``rows``/``cols`` (raster order kept), ``row0, col0`` the chunk's corner."""
    redges = np.concatenate([[0], np.cumsum(row_chunks)])
    cedges = np.concatenate([[0], np.cumsum(col_chunks)])
    bi = np.searchsorted(redges, rows, side="right") - 1
    bj = np.searchsorted(cedges, cols, side="right") - 1
    key = bi * len(col_chunks) + bj
    by_block = np.argsort(key, kind="stable")
    ukeys, first = np.unique(key[by_block], return_index=True)
    bounds = np.append(first, rows.size)
    for g, kk in enumerate(ukeys):
        i, j = divmod(int(kk), len(col_chunks))
        yield i, j, by_block[bounds[g]: bounds[g + 1]], int(redges[i]), int(cedges[j])


def _take_pixels(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.asarray(block)[rows, cols]


def _sum_pixels(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.asarray(block)[rows, cols].sum(axis=0, dtype=np.float64)


class _StoredCube:
    """A DataStack's stored cube as a block source (picklable: its chunks are read where the
    task runs)."""

    def __init__(self, source: ChunkedSource, dtype: np.dtype):
        self.source = source
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in source.shape)
        self.chunks = tuple(int(c) for c in source.chunks)

    def read_block(self, block: Block) -> np.ndarray:
        return self.source.read_block(block)


def _read_pixels(source: ChunkedSource, block: Block, func: Callable[..., np.ndarray],
                 rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return func(source.read_block(block), rows, cols)


def _regular_chunks(size: int, step: int) -> tuple[int, ...]:
    return tuple(min(step, size - s) for s in range(0, size, step))


def _as_readable(cube: Any) -> Any:
    """A numpy array, a dask array or a chunked block source, from what the caller gave."""
    import dask.array as da

    from maxrf.store import DataStack

    if isinstance(cube, DataStack):
        return _StoredCube(cube.block_source(), cube.dtype)
    if isinstance(cube, (np.ndarray, da.Array)):
        return cube
    if hasattr(cube, "read_block") and len(getattr(cube, "chunks", ())) == 3:
        return cube
    if hasattr(cube, "chunks") and len(getattr(cube, "chunks", ())) == 3:
        return da.from_array(cube, chunks=tuple(cube.chunks))
    return np.asarray(cube)


def read_spectra(cube: ArrayLike | DataStack | ChunkedSource, rows: ArrayLike, cols: ArrayLike,
                 *, average: bool = False, client: ClientLike = None) -> np.ndarray:
    """Spectra of the pixels ``(rows[k], cols[k])``, reading each chunk that holds one once.

    Parameters
    ----------
    cube : numpy.ndarray, dask.array.Array, DataStack, chunked array or block source
        The spectral cube ``(H, W, C)`` (counts per channel); see the module docstring.
    rows, cols : array_like of int, shape (n,)
        Pixel coordinates.
    average : bool, optional
        Return the mean spectrum over the pixels instead of every pixel's spectrum.
    client : dask.distributed.Client or str, optional
        Read a dask cube's (or a DataStack's) chunks on this cluster (or scheduler address;
        default ``MAXRF_SCHEDULER``, else local threads).

    Returns
    -------
    numpy.ndarray
        ``average=False``: ``(n, C)`` in the cube's dtype, in the order of ``rows``/``cols``
        (as ``cube[rows, cols]``); ``average=True``: ``(C,)`` float64 mean counts.
    """
    cube = _as_readable(cube)
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    shape = tuple(int(s) for s in cube.shape)
    if len(shape) != 3:
        raise ParameterError(f"cube must be a 3-D (rows, cols, channels) array, got {shape}")
    if rows.shape != cols.shape:
        raise ParameterError(f"rows and cols differ in length ({rows.size} and {cols.size})")
    n = rows.size
    if n and (rows.min() < 0 or cols.min() < 0 or rows.max() >= shape[0] or cols.max() >= shape[1]):
        raise ParameterError(f"pixels fall outside the scan {shape[:2]}")
    if isinstance(cube, np.ndarray):
        if average:
            return cube[rows, cols].sum(axis=0, dtype=np.float64) / max(n, 1)
        return cube[rows, cols]
    if n == 0:
        return np.zeros(shape[2]) if average else np.zeros((0, shape[2]),
                                                           dtype=getattr(cube, "dtype", None))
    func = _sum_pixels if average else _take_pixels
    if hasattr(cube, "read_block"):  # a block source: a task (stored cube) or a call per chunk
        ch, cw = int(cube.chunks[0]), int(cube.chunks[1])
        row_chunks, col_chunks = _regular_chunks(shape[0], ch), _regular_chunks(shape[1], cw)
        groups = list(_chunk_groups(rows, cols, row_chunks, col_chunks))
        blocks = [Block(i * len(col_chunks) + j, slice(r0, r0 + row_chunks[i]),
                        slice(c0, c0 + col_chunks[j])) for i, j, _sel, r0, c0 in groups]
        if isinstance(cube, _StoredCube):  # picklable: on the cluster or the local threads
            import dask

            from maxrf import engine

            tasks = [dask.delayed(_read_pixels)(cube.source, b, func, rows[sel] - r0, cols[sel] - c0)
                     for b, (_i, _j, sel, r0, c0) in zip(blocks, groups)]
            parts = engine.compute(*tasks, client=client)
        else:  # a local source (the viewer's chunk cache): read in this process
            parts = [_read_pixels(cube, b, func, rows[sel] - r0, cols[sel] - c0)
                     for b, (_i, _j, sel, r0, c0) in zip(blocks, groups)]
    else:
        import dask

        from maxrf import engine

        groups = list(_chunk_groups(rows, cols, cube.chunks[0], cube.chunks[1]))
        tasks = [dask.delayed(func)(cube.blocks[i, j, :], rows[sel] - r0, cols[sel] - c0)
                 for i, j, sel, r0, c0 in groups]
        parts = engine.compute(*tasks, client=client)
    if average:
        return np.sum(parts, axis=0) / n
    out = np.empty((n, shape[2]), dtype=np.asarray(parts[0]).dtype)
    for (_i, _j, sel, _r0, _c0), part in zip(groups, parts):
        out[sel] = part
    return out


def region_spectra(cube: ArrayLike | DataStack | ChunkedSource, mask: ArrayLike | Any, average: bool = True,
                   client: ClientLike = None, offset: tuple[int, int] | None = None) -> np.ndarray:
    """Spectra of the pixels under a mask, reading only the chunks the mask touches.

    Parameters
    ----------
    cube : numpy.ndarray, dask.array.Array, DataStack, chunked array or block source
        Spectral cube ``(H, W, C)`` (counts per channel). A dask array (chunked as blocks of
        pixels x channels) is read block by block: only the blocks holding a masked pixel
        are computed, each reduced to its masked pixels on the worker. Other chunked arrays
        with a ``chunks`` attribute (e.g. zarr) are wrapped with ``dask.array.from_array``.
    mask : array_like of bool, shape (H, W)
        Pixels to read (non-zero = selected).
    average : bool, optional
        If True (default) return the mean spectrum; otherwise every selected pixel's
        spectrum.
    client : dask.distributed.Client or str, optional
        Read a dask cube's blocks on this cluster (or scheduler address; default
        ``MAXRF_SCHEDULER``, else local threads).
    offset : (int, int), optional
        ``(row, col)`` of the mask's top-left pixel in the scan, for a mask smaller than
        the scan: the seed's ``mask=p.image`` of a region ``p`` (scikit-image
        ``regionprops``) is its bounding box, at ``offset=p.bbox[:2]``. A region itself
        (anything with ``image`` and ``bbox``) may be passed as ``mask``.

    Returns
    -------
    numpy.ndarray
        ``average=True``: float64, shape (C,), mean counts per channel.
        ``average=False``: shape (n_pixels, C), the cube's dtype, pixels in raster order
        (as ``cube[mask]`` for a numpy cube).
    """
    cube = _as_readable(cube)
    shape = tuple(getattr(cube, "shape", ()))
    if len(shape) != 3:
        raise ParameterError(f"cube must be a 3-D (rows, cols, channels) array, got {shape}")
    rows, cols = mask_pixels(mask, shape[:2], offset)
    return read_spectra(cube, rows, cols, average=average, client=client)
