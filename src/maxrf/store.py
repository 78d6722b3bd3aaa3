"""The DataStack: one scan's cube, summary spectra and derived layers on zarr v3.

This module is the only code that knows zarr and the manifest: convert, verify, info,
report and viewer go through the functions here (:func:`create_store`,
:func:`store_state`, :func:`stored_array`, :func:`check_chunks`, :class:`DataStack`).

Layout of ``NAME.datastack/`` (a directory, not a zip: layers must be replaceable one
file at a time without rewriting the cube, which a single-file archive cannot do; to
share a finished store, zip the folder)::

    maxrf.json               manifest: format version, metadata, layers -> folders
    zarr.json                zarr v3 group
    cube/                    (H, W, C) chunks of pixels x all channels, blosc-lz4 + crc32c
    max_spectrum/ sum_spectrum/ argmax_pixels/
    layers/NAME.TOKEN/       one zarr group per derived layer version

Crash safety: a store is valid only once ``maxrf.json`` names it so. Convert builds the
store in a hidden sibling folder and renames it into place when complete. A layer is
written to a new folder, then the manifest is replaced atomically (``os.replace``) to
point to it, then the previous folder is removed; a crash at any moment leaves the
previous manifest, pointing at complete data. Writers hold an exclusive lock; readers
need none.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.compat import SeedArray, seed_array
from maxrf.engine import Block
from maxrf.errors import (
    ConcurrentWriteError,
    CorruptDataError,
    DataStackVersionError,
    DiskFullError,
    LayerMissingError,
    MissingFileError,
    NotADataStackError,
    ParameterError,
)

if TYPE_CHECKING:
    import zarr
    from numpy.typing import DTypeLike

FORMAT = "maxrf.datastack"
FORMAT_VERSION = 1
MANIFEST = "maxrf.json"
LOCK = ".write.lock"
LAYERS = "layers"


COMPRESSIONS = {"lz4": ("lz4", 5), "zstd": ("zstd", 1), "none": None}
"""``--compression`` choices: blosc codec and level (all bit-shuffled), or none (checksum only).
See benchmarks/results/convert.json (``codecs``) for speed and ratio of each on counts."""

DEFAULT_COMPRESSION = "lz4"


def codecs_for(dtype: np.dtype, compression: str = DEFAULT_COMPRESSION) -> dict[str, Any]:
    """Zarr v3 codecs of maxrf arrays: blosc with bit shuffling, then a crc32c checksum.

    The default, lz4 level 5 + bitshuffle, encodes counts fastest of the blosc codecs
    (about 1 GB/s per thread on synthetic scans, the same as levels 1 and 9 within the
    noise) with a ratio of ~7.3 on Poisson-like spectra (level 1: 6.9; byte shuffle: 3.9;
    no shuffle: 2.6); zstd level 1 compresses ~1.35x better but encodes ~2x slower, which
    makes convert compression-bound. ``'none'`` keeps the crc32c checksum. Measured in
    benchmarks/results/convert.json (``codecs``).
    """
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

    if compression not in COMPRESSIONS:
        raise ParameterError(
            f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}"
        )
    itemsize = np.dtype(dtype).itemsize
    choice = COMPRESSIONS[compression]
    blosc = [] if choice is None else [
        BloscCodec(cname=choice[0], clevel=choice[1], shuffle="bitshuffle", typesize=itemsize)
    ]
    return {
        "serializer": BytesCodec(endian="little") if itemsize > 1 else BytesCodec(),
        "compressors": [*blosc, Crc32cCodec()],
    }


def write_array(group: zarr.Group, name: str, data: np.ndarray,
                chunks: tuple[int, ...] | None = None) -> zarr.Array:
    """Write a small array (spectra, maps) into a zarr group with maxrf's codecs."""
    data = np.asarray(data)
    if data.dtype.kind in "OUS":
        raise ParameterError(f"layer array {name!r} must be numeric, got dtype {data.dtype}")
    arr = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks or _layer_chunks(data.shape),
        fill_value=0,
        **codecs_for(data.dtype),
    )
    if data.size and data.ndim >= 3:
        for i in range(data.shape[0]):  # one map at a time: zarr encodes a write's chunks at once
            arr[i] = data[i]
    elif data.size:
        arr[...] = data
    return arr


def _layer_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of a layer array: one map (or a 2048 x 2048 tile of it) per chunk, so writing
    and reading a stack of maps never encodes it as one huge buffer."""
    if not shape or 0 in shape:
        return tuple(max(1, s) for s in shape) or (1,)
    if len(shape) <= 1:
        return tuple(shape)
    lead = (1,) * (len(shape) - 2)
    return (*lead, min(shape[-2], 2048), min(shape[-1], 2048))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` so that readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def disk_errors(path: os.PathLike | str):
    """Context manager turning ENOSPC / EDQUOT into :class:`DiskFullError` naming ``path``."""

    @contextlib.contextmanager
    def _ctx() -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError("disk full while writing; nothing was kept", path) from exc
            raise

    return _ctx()


class Layer(dict):
    """A derived layer read back from a store: arrays by name, plus ``.attrs``."""

    def __init__(self, name: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]):
        super().__init__(arrays)
        self.name = name
        self.attrs = dict(attrs)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.shape}" for k, v in self.items())
        return f"<Layer {self.name!r} {{{shapes}}} attrs={sorted(self.attrs)}>"


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
                f"stored chunk of the cube at {_describe_key(key, self.array.chunks)} is corrupt "
                f"({type(exc).__name__}: {exc}); run 'maxrf verify'",
                self.path,
            ) from exc


def _describe_key(key: Any, chunks: tuple[int, ...]) -> str:
    if isinstance(key, tuple) and all(isinstance(k, slice) for k in key[:2]):
        return "cube/c/{}/{}/0".format(*(k.start // ch for k, ch in zip(key[:2], chunks[:2])))
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

            self._array = zarr.open_array(self.path / "cube", mode="r")
        return self._array

    def blocks(self) -> list[Block]:
        from maxrf.engine import tile_blocks

        return tile_blocks(self.shape[0], self.shape[1], self.chunks[0], self.chunks[1])

    def read_block(self, block: Block) -> np.ndarray:
        return _CubeReader(self._zarr(), self.path)[block.rows, block.cols, :]


class DataStack:
    """A converted scan: lazy cube, summary spectra, calibration and derived layers.

    Parameters
    ----------
    path : str or Path
        The ``.datastack`` folder.

    Raises
    ------
    MissingFileError
        If ``path`` does not exist.
    NotADataStackError
        If ``path`` is not a complete maxrf datastack.
    DataStackVersionError
        If it was written in a format version this maxrf cannot read.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = read_manifest(self.path)
        self._manifest = manifest
        import zarr

        try:
            self._root = zarr.open_group(self.path, mode="r")
            cube = self._root["cube"]
        except Exception as exc:
            raise NotADataStackError(f"cannot open the zarr cube ({exc})", self.path) from exc
        self._cube_array = cube
        self.shape: tuple[int, int, int] = tuple(int(s) for s in cube.shape)
        self.dtype = np.dtype(cube.dtype)
        self.chunks: tuple[int, int, int] = tuple(int(c) for c in cube.chunks)

    # ------------------------------------------------------------------ core data
    @property
    def cube(self):
        """The cube as a lazy dask array ``(H, W, C)`` chunked as blocks of pixels x all channels."""
        import dask.array as da

        return da.from_array(
            _CubeReader(self._cube_array, self.path), chunks=self.chunks, asarray=False,
            name=f"maxrf-cube-{self.path.resolve()}-{self._manifest.get('created', '')}",
        )

    maxrf_cube = cube  # maxrf4u's name (see maxrf.compat)

    def block_source(self) -> CubeSource:
        """The stored cube as a source for :func:`maxrf.engine.run`."""
        return CubeSource(self.path, self.shape, self.chunks)

    def _core(self, name: str) -> np.ndarray:
        try:
            return self._root[name][...]
        except Exception as exc:
            raise CorruptDataError(f"cannot read {name} ({exc})", self.path) from exc

    @property
    def max_spectrum(self) -> SeedArray:
        """Per channel, the maximum over all pixels (counts).

        Called as the seed does, ``ds.max_spectrum()`` returns :attr:`smoothed_max_spectrum`
        (maxrf4u's max spectrum, whose peaks are the scan's peaks) when the store has it.
        """
        out = seed_array(self._core("max_spectrum"))
        smoothed = self.smoothed_max_spectrum
        if smoothed is not None:
            out.seed_call = smoothed
        return out

    @property
    def smoothed_max_spectrum(self) -> np.ndarray | None:
        """Per channel, the maximum over pixels of the spectra smoothed by a Gaussian of
        :data:`maxrf.seed_spectrum.SEED_SIGMA` channels (counts), or None for a store
        converted before it existed (or converted with smoothing: then the max spectrum is
        already smoothed)."""
        try:
            present = "smoothed_max_spectrum" in self._root
        except Exception:  # noqa: BLE001 - an unreadable group: the core read will say so
            return None
        return self._core("smoothed_max_spectrum") if present else None

    @property
    def sum_spectrum(self) -> SeedArray:
        """Per channel, the mean over all pixels (counts per pixel)."""
        return seed_array(self._core("sum_spectrum"))

    @property
    def argmax_pixels(self) -> np.ndarray:
        """``(C, 2)`` [row, col] of the pixel holding each channel's maximum."""
        return self._core("argmax_pixels")

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance: source files and sizes, header, options, package version, creation time."""
        return dict(self._manifest.get("metadata", {}))

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The energy calibration (``gain_keV``, ``offset_keV``, ``peaks``, ``method``) or None."""
        if "calibration" not in self.layers:
            return None
        return self.read("calibration").attrs

    @property
    def energies(self) -> SeedArray:
        """Energy (keV) of each channel: ``offset_keV + gain_keV * channel``.

        Raises
        ------
        LayerMissingError
            If the scan has no energy calibration yet (run ``maxrf calibrate``).
        """
        cal = self.calibration
        if cal is None:
            raise LayerMissingError(
                "no energy calibration: run 'maxrf calibrate' (or maxrf.calibrate)", self.path
            )
        n = self.shape[2]
        return seed_array(cal["offset_keV"] + cal["gain_keV"] * np.arange(n, dtype=np.float64))

    # ---------------------------------------------------------------- layers
    @property
    def layers(self) -> list[str]:
        """Names of the derived layers present (re-read from disk)."""
        return sorted(read_manifest(self.path).get("layers", {}))

    def read(self, name: str, lazy: bool = False) -> Layer:
        """Read a derived layer (the cube is never read).

        Parameters
        ----------
        name : str
            Layer name (``'peak_maps'``, ``'element_maps'``...).
        lazy : bool
            Return :class:`LayerArray` views that read on indexing (``layer['maps'][3]``
            reads one map) instead of loading every array: for map stacks of scans
            larger than memory.

        Raises
        ------
        LayerMissingError
            If the layer has not been computed.
        """
        if lazy:
            return _open_layer_lazy(self.path, name)
        for _attempt in range(5):
            manifest = read_manifest(self.path)
            entry = manifest.get("layers", {}).get(name)
            if entry is None:
                raise LayerMissingError(
                    f"layer {name!r} has not been computed (present: {sorted(manifest.get('layers', {}))})",
                    self.path,
                )
            try:
                layer = _read_layer(self.path / entry["dir"], name, entry)
                error = None
            except Exception as exc:
                layer, error = None, exc
            # zarr reads a vanished chunk as fill values, so a folder deleted under us
            # could pass silently; writers delete a folder only after the manifest stops
            # naming it, so if it still names it now, what we read (or failed to) is real.
            now = read_manifest(self.path).get("layers", {}).get(name)
            if now is None or now["dir"] != entry["dir"]:
                continue  # replaced meanwhile: read the new version
            if error is not None:
                raise CorruptDataError(
                    f"layer {name!r} is damaged ({type(error).__name__}: {error}); recompute it",
                    self.path / entry["dir"],
                ) from error
            return layer
        raise CorruptDataError(f"layer {name!r} keeps disappearing while read", self.path)

    def write_layer(
        self,
        name: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Write (or replace) a derived layer atomically.

        Readers see the previous layer or the new one, never a mix; a crash leaves the
        previous state; the previous version's folder is removed, so recomputing a layer
        does not grow the store.

        Raises
        ------
        ConcurrentWriteError
            If another process is writing to this datastack.
        DiskFullError
            If the disk fills up (the layer is left as it was).
        """
        write_layer(self.path, name, arrays, attrs)

    def __repr__(self) -> str:
        h, w, c = self.shape
        return f"<DataStack {self.path.name!r} {h}x{w} px x {c} channels {self.dtype}, layers={self.layers}>"


# ---------------------------------------------------------------------- functions
def read_manifest(path: Path) -> dict[str, Any]:
    """Read and check a store's manifest."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError("no such datastack", path)
    mpath = path / MANIFEST
    if not path.is_dir() or not mpath.is_file():
        raise NotADataStackError(
            "not a maxrf datastack (no maxrf.json: not a datastack, or an unfinished one)", path
        )
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise NotADataStackError(f"unreadable maxrf.json ({exc})", path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotADataStackError("maxrf.json does not describe a maxrf datastack", path)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DataStackVersionError(
            f"datastack format version {version!r}; this maxrf reads version {FORMAT_VERSION}",
            path,
        )
    return manifest


@dataclass(frozen=True)
class LayerEntry:
    """What the manifest records of one layer: its folder, array names, attributes and version."""

    name: str
    dir: str
    arrays: tuple[str, ...]
    attrs: dict[str, Any]
    version: int


@dataclass(frozen=True)
class StoreState:
    """One consistent reading of a store's manifest (see :func:`store_state`)."""

    created: str | None
    maxrf_version: str | None
    metadata: dict[str, Any]
    layers: dict[str, LayerEntry]


def store_state(path: str | os.PathLike) -> StoreState:
    """Read the manifest once: creation time, maxrf version, provenance and layer entries.

    Raises
    ------
    MissingFileError, NotADataStackError, DataStackVersionError
        As :class:`DataStack`.
    """
    manifest = read_manifest(Path(path))
    layers = {
        name: LayerEntry(name, str(e["dir"]), tuple(e.get("arrays", [])), dict(e.get("attrs", {})),
                         int(e.get("version", 0)))
        for name, e in manifest.get("layers", {}).items()
    }
    return StoreState(manifest.get("created"), manifest.get("maxrf_version"),
                      dict(manifest.get("metadata", {})), layers)


def is_datastack(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder holding a manifest (a complete store, valid or not)."""
    return (Path(path) / MANIFEST).is_file()


@dataclass(frozen=True)
class StoredArray:
    """One zarr array of a store, described without reading its data.

    ``label`` names it in messages (``cube``, ``layers/peak_maps.1a2b3c4d/maps``).
    """

    label: str
    folder: Path
    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def chunk_coords(self) -> list[tuple[int, ...]]:
        """Grid coordinates of every chunk, in C order."""
        grid = [-(-s // c) if s else 0 for s, c in zip(self.shape, self.chunks)]
        return list(np.ndindex(*grid))

    def read(self) -> np.ndarray:
        """The whole array (for small arrays: spectra, energies)."""
        import zarr

        return zarr.open_array(self.folder, mode="r")[...]


def stored_array(path: str | os.PathLike, rel: str) -> StoredArray | None:
    """The array at ``rel`` inside the store (``'cube'``, ``'<layer dir>/<key>'``), or None if absent."""
    import zarr

    folder = Path(path) / rel
    if not (folder / "zarr.json").is_file():
        return None
    array = zarr.open_array(folder, mode="r")
    return StoredArray(rel, folder, tuple(int(s) for s in array.shape),
                       tuple(int(c) for c in array.chunks))


def check_chunks(folder: str | os.PathLike, label: str, coords_list: list[tuple[int, ...]]) -> list[str]:
    """Decode the chunks ``coords_list`` of the zarr array at ``folder``; one message per bad chunk.

    A missing chunk file (zarr would read it as fill values) and a chunk that fails its
    checksum or does not decode are both reported, named ``LABEL/c/i/j/k``.
    """
    import zarr

    array = zarr.open_array(folder, mode="r")
    problems = []
    for coords in coords_list:
        region = tuple(slice(i * c, min((i + 1) * c, s))
                       for i, c, s in zip(coords, array.chunks, array.shape))
        key = f"{label}/c/" + "/".join(map(str, coords))
        if not (Path(folder) / "c" / Path(*map(str, coords))).is_file():
            problems.append(f"{key}: chunk file missing (would read as zeros)")
            continue
        try:
            array[region]
        except Exception as exc:  # checksum mismatch or undecodable bytes
            problems.append(f"{key}: corrupt chunk ({type(exc).__name__}: {exc})")
    return problems


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
        fill_value=0, dimension_names=("row", "col", "channel"), **codecs_for(dtype, compression),
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


def layer_shapes(path: str | os.PathLike, entry: LayerEntry) -> dict[str, list[int]]:
    """Shape of every array of a layer, read from the zarr metadata only."""
    import zarr

    group = zarr.open_group(Path(path) / entry.dir, mode="r")
    return {k: list(group[k].shape) for k in entry.arrays}


def _read_layer(folder: Path, name: str, entry: Mapping[str, Any]) -> Layer:
    """Read a layer folder; any failure is raised as is (the caller decides what it means)."""
    import zarr

    group = zarr.open_group(folder, mode="r")
    arrays = {key: group[key][...] for key in entry.get("arrays", [])}
    return Layer(name, arrays, entry.get("attrs", {}))


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Exclusive writer lock on a store; a second writer gets :class:`ConcurrentWriteError`."""
    lock_path = Path(path) / LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConcurrentWriteError(
                "another process is writing to this datastack; try again when it has finished",
                path,
            ) from None
        yield
    finally:
        os.close(fd)


def write_layer(
    path: str | os.PathLike,
    name: str,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write or replace layer ``name`` of the store at ``path`` atomically (see DataStack)."""
    with LayerWriter(path) as lw:
        lw.begin(name)
        for key, value in arrays.items():
            lw.put(name, key, value)
        lw.commit({name: attrs or {}})


def write_region(array: zarr.Array, region: tuple[slice, ...], data: np.ndarray) -> None:
    """Write ``data`` into ``array[region]`` (one place for streamed layer writes)."""
    array[region] = data


def settle_zarr_writes(timeout: float = 30.0) -> None:
    """Wait until zarr's I/O loop has no write left running.

    zarr writes the chunks of one assignment as concurrent tasks; when one fails (a full
    disk), the error reaches the caller while the others still run, and a chunk written
    after the caller removed its folder recreates the folder. Cleaning up after a failed
    write therefore waits for them first.
    """
    import asyncio

    try:
        from zarr.core.sync import loop as zarr_loop
    except ImportError:  # another zarr layout: nothing known to wait for
        return
    running = zarr_loop[0]
    if running is None or not running.is_running():
        return

    async def others_done() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    with contextlib.suppress(Exception):  # cleanup goes on even if waiting fails
        asyncio.run_coroutine_threadsafe(others_done(), running).result(timeout + 5)


class LayerWriter:
    """Write one or more layers of a store, whole arrays or region by region, and commit
    them together in one atomic manifest update.

    Streaming writes let a layer larger than memory (the maps of a 30 GB scan) be written
    band by band as the pass over the cube produces it. Until :meth:`commit`, readers see
    the previous layers; leaving the ``with`` block without committing (an exception, a
    crash) removes what was written. The writer lock is held for the whole block, so a
    second writer gets :class:`ConcurrentWriteError` at once.

    Examples
    --------
    >>> with LayerWriter(ds.path) as lw:                       # doctest: +SKIP
    ...     maps = lw.create("peak_maps", "maps", (k, h, w), np.float32, (1, 64, w))
    ...     lw.write(maps, (slice(None), slice(0, 64), slice(None)), band)
    ...     lw.put("peak_maps", "slices", slices)
    ...     lw.commit({"peak_maps": {"labels": labels}})
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        read_manifest(self.path)  # validates the store before taking the lock
        self._stack: contextlib.ExitStack | None = None
        self._groups: dict[str, Any] = {}
        self._dirs: dict[str, str] = {}
        self._arrays: dict[str, list[str]] = {}
        self._committed = False

    def __enter__(self) -> LayerWriter:
        stack = contextlib.ExitStack()
        stack.enter_context(writer_lock(self.path))
        self._stack = stack
        try:
            _collect_garbage(self.path, read_manifest(self.path))
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._committed:
                try:
                    if self._dirs:
                        settle_zarr_writes()  # else a write still running recreates a folder
                finally:  # a second Ctrl-C while waiting still removes what was written
                    for rel in self._dirs.values():
                        shutil.rmtree(self.path / rel, ignore_errors=True)
        finally:
            if self._stack is not None:  # set by __enter__, which ran for __exit__ to run
                self._stack.close()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError("disk full while writing; nothing was kept", self.path) from exc

    def begin(self, name: str) -> zarr.Group:
        """Start (or continue) the new version of layer ``name``; returns its zarr group."""
        import zarr

        if self._stack is None:
            raise ParameterError("LayerWriter must be used as a context manager ('with')")
        if self._committed:
            raise ParameterError("this LayerWriter has already committed")
        if not name.isidentifier():
            raise ParameterError(f"layer name must be an identifier, got {name!r}")
        if name not in self._groups:
            rel = f"{LAYERS}/{name}.{secrets.token_hex(4)}"
            self._dirs[name] = rel
            self._arrays[name] = []
            self._groups[name] = zarr.open_group(self.path / rel, mode="w")
        return self._groups[name]

    def _key(self, name: str, key: str) -> None:
        if key in self._arrays[name]:
            raise ParameterError(f"layer {name!r} already has an array {key!r}")
        self._arrays[name].append(key)

    def put(self, name: str, key: str, data: np.ndarray) -> None:
        """Write a whole array (spectra, tables, small maps) into layer ``name``."""
        group = self.begin(name)
        self._key(name, key)
        write_array(group, key, data)

    def create(self, name: str, key: str, shape: tuple[int, ...], dtype: DTypeLike,
               chunks: tuple[int, ...] | None = None) -> zarr.Array:
        """Create an empty array in layer ``name`` to be filled with :meth:`write`."""
        group = self.begin(name)
        dtype = np.dtype(dtype)
        if dtype.kind in "OUS":
            raise ParameterError(f"layer array {key!r} must be numeric, got dtype {dtype}")
        self._key(name, key)
        return group.create_array(key, shape=tuple(int(s) for s in shape), dtype=dtype,
                                  chunks=chunks or _layer_chunks(tuple(shape)), fill_value=0,
                                  **codecs_for(dtype))

    def write(self, array: zarr.Array, region: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``array[region]`` of an array from :meth:`create`."""
        write_region(array, region, data)

    def commit(self, attrs: Mapping[str, Mapping[str, Any]]) -> None:
        """Point the manifest at the new layers (one atomic replace), then drop the old ones.

        Parameters
        ----------
        attrs : mapping of layer name to attrs
            JSON-safe attributes of every layer begun (layers not begun are created empty).
        """
        for name in attrs:
            self.begin(name)
        with disk_errors(self.path):
            manifest = read_manifest(self.path)
            old = []
            for name, rel in self._dirs.items():
                attrs_json = json.loads(json.dumps(dict(attrs.get(name) or {}), default=_json_default))
                prev = manifest.setdefault("layers", {}).get(name)
                manifest["layers"][name] = {
                    "dir": rel, "arrays": list(self._arrays[name]), "attrs": attrs_json,
                    "version": (prev or {}).get("version", 0) + 1,
                }
                if prev is not None:
                    old.append(prev["dir"])
            write_json_atomic(self.path / MANIFEST, manifest)
        self._committed = True
        for rel in old:
            shutil.rmtree(self.path / rel, ignore_errors=True)


class LayerArray:
    """A stored layer array, read on demand: ``a[i]`` reads one map, ``np.asarray(a)`` all.

    Every read re-checks that the manifest still names this layer version (zarr reads a
    chunk of a deleted folder as fill values), and names the chunk if a checksum fails.
    """

    def __init__(self, store: Path, layer: str, folder: str, key: str, array: Any):
        self._store = Path(store)
        self._layer = layer
        self._folder = folder
        self._key = key
        self._array = array
        self.shape: tuple[int, ...] = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.nbytes = self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            data = np.asarray(self._array[key])
        except Exception as exc:  # checksum mismatch or undecodable bytes
            data, error = None, exc
        else:
            error = None
        now = read_manifest(self._store).get("layers", {}).get(self._layer)
        if now is None or now["dir"] != self._folder:
            raise LayerMissingError(
                f"layer {self._layer!r} was replaced or deleted since it was opened; read it again",
                self._store,
            )
        if error is not None:
            raise CorruptDataError(
                f"layer {self._layer!r} array {self._key!r} is damaged at {key!r} "
                f"({type(error).__name__}: {error}); recompute it", self._store / self._folder,
            ) from error
        return data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"<LayerArray {self._layer}/{self._key} {self.shape} {self.dtype}>"


def _open_layer_lazy(path: Path, name: str) -> Layer:
    import zarr

    manifest = read_manifest(path)
    entry = manifest.get("layers", {}).get(name)
    if entry is None:
        raise LayerMissingError(
            f"layer {name!r} has not been computed (present: {sorted(manifest.get('layers', {}))})",
            path,
        )
    try:
        group = zarr.open_group(path / entry["dir"], mode="r")
        arrays = {key: LayerArray(path, name, entry["dir"], key, group[key])
                  for key in entry.get("arrays", [])}
    except Exception as exc:
        raise CorruptDataError(f"layer {name!r} is damaged ({type(exc).__name__}: {exc}); "
                               "recompute it", path / entry["dir"]) from exc
    return Layer(name, arrays, entry.get("attrs", {}))


def delete_layer(path: str | os.PathLike, name: str) -> None:
    """Remove a derived layer (atomically, like :func:`write_layer`)."""
    path = Path(path)
    with writer_lock(path):
        manifest = read_manifest(path)
        old = manifest.get("layers", {}).pop(name, None)
        if old is None:
            return
        write_json_atomic(path / MANIFEST, manifest)
        shutil.rmtree(path / old["dir"], ignore_errors=True)


def _collect_garbage(path: Path, manifest: Mapping[str, Any]) -> None:
    """Remove layer folders a crashed writer left behind (not named by the manifest)."""
    live = {entry["dir"] for entry in manifest.get("layers", {}).values()}
    layers = path / LAYERS
    if not layers.is_dir():
        return
    for child in layers.iterdir():
        if f"{LAYERS}/{child.name}" not in live and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)


def new_manifest(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest of a freshly converted store."""
    from datetime import UTC, datetime

    from maxrf import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "maxrf_version": __version__,
        "metadata": dict(metadata),
        "layers": {},
    }


def open_datastack(source: str | os.PathLike[str] | DataStack) -> DataStack:
    """Return ``source`` if it is a DataStack, else open the datastack at that path."""
    return source if isinstance(source, DataStack) else DataStack(source)


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
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.write(encoded)
            f.write(crc32c.crc32c(encoded).to_bytes(4, "little"))
