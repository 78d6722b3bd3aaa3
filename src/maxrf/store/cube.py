"""The cube of a store: creating it, filling it chunk by chunk, reading it block by block."""
from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.engine import Block
from maxrf.errors import ConcurrentWriteError, CorruptDataError
from maxrf.store.format import (
    ARRAY_CONFIG,
    DEFAULT_COMPRESSION,
    LAYERS,
    MANIFEST,
    _fsync_dir,
    codecs_for,
    new_manifest,
    read_manifest,
    write_array,
    write_json_atomic,
    writer_lock,
)
from maxrf.store.layers import _collect_garbage

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


class _CubeReader:
    """Indexable wrapper of the zarr cube that names the chunk when a checksum fails."""

    def __init__(self, array: Any, path: Path):
        self.array = array
        self.path = path
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return self.array[key]
        except Exception as exc:  # zarr raises plain errors on bad checksums or blosc data
            raise CorruptDataError(
                f"stored chunk of the cube at {_describe_key(key, self.array)} is corrupt "
                f"({type(exc).__name__}: {exc}); run 'maxrf verify'",
                self.path,
            ) from exc


def _describe_key(key: Any, array: Any) -> str:
    if isinstance(key, tuple) and all(isinstance(k, slice) for k in key[:2]):
        coords = tuple((k.start or 0) // ch for k, ch in zip(key[:2], array.chunks[:2]))
        return "cube/" + array.metadata.encode_chunk_key((*coords, 0))
    return repr(key)


class CubeSource:
    """Engine source over the stored cube: one block per zarr chunk (picklable)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], chunks: tuple[int, int, int]):
        self.path = Path(path)
        self.shape = tuple(shape)
        self.chunks = tuple(chunks)
        self._array = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "shape": self.shape, "chunks": self.chunks, "_array": None}

    def _zarr(self) -> Any:
        if self._array is None:
            import zarr

            if zarr.config.get("threading.max_workers", None) is None:
                # zarr decodes chunks in a pool of its own, by default cpu + 4 threads, and
                # every thread keeps the freed chunk buffers in a malloc arena of its own
                # (measured: +100 MB resident after one pass of a 1 GB cube with 2 CPUs,
                # +50 MB with one decoding thread, at the same speed). The engine reads one
                # block per thread and spends far longer on it than on the decoding: half
                # of the CPUs decode. The pool is zarr's for the whole process, so a cube
                # written later in this process also compresses on these threads. A value
                # the user configured is left alone.
                zarr.config.set({"threading.max_workers": max(1, (os.cpu_count() or 1) // 2)})
            self._array = zarr.open_array(self.path / "cube", mode="r")
        return self._array

    def blocks(self) -> list[Block]:
        from maxrf.engine import tile_blocks

        return tile_blocks(self.shape[0], self.shape[1], self.chunks[0], self.chunks[1])

    def read_block(self, block: Block) -> np.ndarray:
        return _CubeReader(self._zarr(), self.path)[block.rows, block.cols, :]


class CubeSink:
    """Engine sink writing each block into the cube being built (chunk-aligned, so no races)."""

    def __init__(self, path: Path):
        self.path = path
        self._array = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_array": None}

    def write_block(self, block: Block, data: np.ndarray) -> None:
        if self._array is None:
            self._array = ChunkWriter(self.path)
        self._array.write_block(block.rows, block.cols, data)


CUBE_KEY_SEPARATOR = "."
"""The cube's chunk files are ``cube/c.I.J.0``, all in one folder: with zarr's default
``/`` every chunk row needs two new folders (``c/I/0/``), and a mkdir costs ~0.35 ms
here, 0.1-0.2 CPU s per GiB converted (DECISIONS["flat_chunk_keys"] in
benchmarks/bench_convert.py). Readers follow the array's metadata, so stores written
with ``/`` read and verify the same (an older maxrf reads these stores too, but its
``verify`` looked for ``c/I/J/0`` files)."""


def create_cube(path: str | os.PathLike, shape: tuple[int, int, int], dtype: DTypeLike,
                chunks: tuple[int, int], compression: str = DEFAULT_COMPRESSION) -> CubeSink:
    """Start a new store at ``path``: the zarr group and an empty ``(H, W, C)`` cube.

    ``chunks`` is (rows, cols) of pixels; a chunk holds all channels. Returns the sink that
    fills the cube block by block; :func:`finish_store` then makes the store valid.
    ``compression`` is a key of :data:`COMPRESSIONS`.
    """
    import zarr

    h, w, c = (int(s) for s in shape)
    root = zarr.open_group(Path(path), mode="w")
    root.create_array(
        "cube", shape=(h, w, c), dtype=dtype, chunks=(int(chunks[0]), int(chunks[1]), c),
        fill_value=0, dimension_names=("row", "col", "channel"), config=ARRAY_CONFIG,
        chunk_key_encoding={"name": "default", "separator": CUBE_KEY_SEPARATOR},
        **codecs_for(dtype, compression),
    )
    return CubeSink(Path(path) / "cube")


def finish_store(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                 metadata: Mapping[str, Any]) -> None:
    """Write the summary arrays (``max_spectrum``, ``sum_spectrum``, ``argmax_pixels``...)
    and, last, the manifest that makes the store valid."""
    import zarr

    root = zarr.open_group(Path(path), mode="r+")
    for name, data in arrays.items():
        write_array(root, name, data)
    write_json_atomic(Path(path) / MANIFEST, new_manifest(metadata))


READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


def add_summary_array(path: str | os.PathLike, name: str, data: np.ndarray) -> bool:
    """Add a summary array computed after convert (``smoothed_max_spectrum``) to a finished
    store, as :func:`finish_store` writes it, if the store has none of that name.

    Crash-safe: the array is written whole in a hidden folder under ``layers/`` (removed
    by the next writer if a crash leaves it there) and renamed into place, so readers see
    no array or the complete one. Nothing else of the store is replaced.

    Returns
    -------
    bool
        True if the store now holds the array (written here, or already present); False
        if the store cannot be written (a read-only file system or folder, or another
        writer holding the lock): the caller then keeps its value without storing it.
    """
    path = Path(path)
    if (path / name / "zarr.json").is_file():
        return True
    try:
        with writer_lock(path):
            if (path / name / "zarr.json").is_file():  # written meanwhile by another process
                return True
            _collect_garbage(path, read_manifest(path))
            _write_and_rename(path, name, data)
    except ConcurrentWriteError:
        return False
    except OSError as exc:
        if exc.errno in READ_ONLY_ERRNOS:
            return False
        raise
    return True


def _write_and_rename(path: Path, name: str, data: np.ndarray) -> None:
    """Write ``data`` as array ``name`` of a hidden group, then rename it into ``path``."""
    import zarr

    tmp = path / LAYERS / f".{name}.{secrets.token_hex(4)}"
    tmp.parent.mkdir(exist_ok=True)
    try:
        write_array(zarr.open_group(tmp, mode="w"), name, data)
        os.rename(tmp / name, path / name)
        _fsync_dir(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ChunkWriter:
    """Writes whole chunks of a zarr v3 array as files, encoded as zarr would, ~5x faster.

    zarr's own write path (asyncio loop, buffer copies, a thread hop per codec) costs
    far more than encoding itself on a cube streamed in chunk-sized blocks: measured
    80-180 MB/s through ``array[...] = block`` against 500+ MB/s here per thread with
    the same bytes on disk (see benchmarks/bench_convert.py). The codecs are read from
    the array's own metadata; an array with codecs other than ``bytes -> [blosc] ->
    crc32c`` is written through zarr. Blocks must be chunk-aligned (engine blocks of a
    cube whose chunks are the blocks are); an edge block is padded with the fill value
    as zarr stores edge chunks. Picklable: the array is opened lazily on each worker.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._plan: tuple[Any, ...] | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_plan": None}

    def _make_plan(self) -> tuple[Any, ...]:
        import zarr
        from numcodecs import Blosc
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

        array = zarr.open_array(self.path, mode="r+")
        meta = array.metadata
        codecs = list(getattr(meta, "codecs", ()))
        fast = (len(codecs) in (2, 3) and isinstance(codecs[0], BytesCodec)
                and isinstance(codecs[-1], Crc32cCodec)
                and (len(codecs) == 2 or isinstance(codecs[1], BloscCodec)))
        blosc = None
        if fast and len(codecs) == 3:
            c = codecs[1]
            shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c.shuffle.name]
            blosc = Blosc.from_config({"cname": c.cname.name, "clevel": c.clevel, "blocksize": c.blocksize,
                                       "shuffle": shuffle, "typesize": c.typesize})
        dtype = np.dtype(array.dtype).newbyteorder("<")
        return (array, fast, blosc, tuple(int(x) for x in array.chunks), dtype, meta)

    def write_block(self, rows: slice, cols: slice, data: np.ndarray) -> None:
        """Write ``data`` at ``[rows, cols, :]`` (a whole chunk, or the edge part of one)."""
        import crc32c

        if self._plan is None:
            self._plan = self._make_plan()
        array, fast, blosc, chunks, dtype, meta = self._plan
        aligned = rows.start % chunks[0] == 0 and cols.start % chunks[1] == 0 and data.shape[2] == chunks[2]
        if not (fast and aligned):
            array[rows, cols, :] = data
            return
        if data.shape[:2] != chunks[:2]:  # edge chunk: zarr stores it padded to full size
            full = np.zeros(chunks, dtype=dtype)
            full[: data.shape[0], : data.shape[1]] = data
            data = full
        payload = np.ascontiguousarray(data, dtype=dtype)
        encoded = memoryview(blosc.encode(payload) if blosc is not None else payload).cast("B")
        key = meta.encode_chunk_key((rows.start // chunks[0], cols.start // chunks[1], 0))
        target = self.path / key
        if target.parent != self.path:  # chunk keys with folders (zarr's default "/")
            target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.write(encoded)
            f.write(crc32c.crc32c(encoded).to_bytes(4, "little"))
