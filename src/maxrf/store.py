"""The DataStack: one scan's cube, summary spectra and derived layers on zarr v3.

Layout of ``NAME.datastack/`` (a directory, not a zip: layers must be replaceable one
file at a time without rewriting the cube, which a single-file archive cannot do; use
``maxrf pack``-style zipping of the finished folder to share it)::

    maxrf.json               manifest: format version, metadata, layers -> folders
    zarr.json                zarr v3 group
    cube/                    (H, W, C) chunks of pixels x all channels, blosc-zstd + crc32c
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
from pathlib import Path
from typing import Any

import numpy as np

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

FORMAT = "maxrf.datastack"
FORMAT_VERSION = 1
MANIFEST = "maxrf.json"
LOCK = ".write.lock"
LAYERS = "layers"


class SeedArray(np.ndarray):
    """An ndarray that also answers a call, so ``ds.energies`` and the seed's
    ``ds.energies()`` both work.

    The call returns what the seed's call returned where that differs: ``ds.max_spectrum()``
    is the smoothed max spectrum of maxrf4u (``seed_call``), ``ds.max_spectrum`` the raw one.
    """

    seed_call: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        return np.asarray(self if self.seed_call is None else self.seed_call)


def _seed_array(a: np.ndarray) -> SeedArray:
    out = np.asarray(a).view(SeedArray)
    out.flags.writeable = False
    return out


def codecs_for(dtype: np.dtype) -> dict[str, Any]:
    """Zarr v3 codecs of maxrf arrays: blosc-lz4 with bit shuffling, then a crc32c checksum.

    lz4 + bitshuffle encodes counts at about 1 GB/s per core with a ratio of ~5 on
    Poisson-like spectra; zstd compresses ~1.8x better but encodes ~10x slower, which
    would make convert compression-bound.
    """
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

    itemsize = np.dtype(dtype).itemsize
    return {
        "serializer": BytesCodec(endian="little") if itemsize > 1 else BytesCodec(),
        "compressors": [
            BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=itemsize),
            Crc32cCodec(),
        ],
    }


def write_array(group: Any, name: str, data: np.ndarray, chunks: tuple[int, ...] | None = None):
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

    maxrf_cube = cube

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
        out = _seed_array(self._core("max_spectrum"))
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
        return _seed_array(self._core("sum_spectrum"))

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
        return _seed_array(cal["offset_keV"] + cal["gain_keV"] * np.arange(n, dtype=np.float64))

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


def write_region(array: Any, region: tuple[slice, ...], data: np.ndarray) -> None:
    """Write ``data`` into ``array[region]`` (one place for streamed layer writes)."""
    array[region] = data


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
                for rel in self._dirs.values():
                    shutil.rmtree(self.path / rel, ignore_errors=True)
        finally:
            if self._stack is not None:  # set by __enter__, which ran for __exit__ to run
                self._stack.close()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError("disk full while writing; nothing was kept", self.path) from exc

    def begin(self, name: str) -> Any:
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

    def create(self, name: str, key: str, shape: tuple[int, ...], dtype: Any,
               chunks: tuple[int, ...] | None = None) -> Any:
        """Create an empty array in layer ``name`` to be filled with :meth:`write`."""
        group = self.begin(name)
        dtype = np.dtype(dtype)
        if dtype.kind in "OUS":
            raise ParameterError(f"layer array {key!r} must be numeric, got dtype {dtype}")
        self._key(name, key)
        return group.create_array(key, shape=tuple(int(s) for s in shape), dtype=dtype,
                                  chunks=chunks or _layer_chunks(tuple(shape)), fill_value=0,
                                  **codecs_for(dtype))

    def write(self, array: Any, region: tuple[slice, ...], data: np.ndarray) -> None:
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
