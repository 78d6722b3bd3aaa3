"""Derived layers of a store: reading them (whole or lazily) and writing them atomically."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import CorruptDataError, DiskFullError, LayerMissingError, ParameterError
from maxrf.store.format import (
    ARRAY_CONFIG,
    LAYERS,
    MANIFEST,
    _json_default,
    _layer_chunks,
    codecs_for,
    disk_errors,
    read_manifest,
    write_array,
    write_json_atomic,
    writer_lock,
)

if TYPE_CHECKING:
    import zarr
    from numpy.typing import DTypeLike


class Layer(dict):
    """A derived layer read back from a store: arrays by name, plus ``.attrs``."""

    def __init__(self, name: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]):
        super().__init__(arrays)
        self.name = name
        self.attrs = dict(attrs)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.shape}" for k, v in self.items())
        return f"<Layer {self.name!r} {{{shapes}}} attrs={sorted(self.attrs)}>"


def _read_layer(folder: Path, name: str, entry: Mapping[str, Any]) -> Layer:
    """Read a layer folder; any failure is raised as is (the caller decides what it means)."""
    import zarr

    group = zarr.open_group(folder, mode="r")
    arrays = {key: group[key][...] for key in entry.get("arrays", [])}
    return Layer(name, arrays, entry.get("attrs", {}))


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
                                  config=ARRAY_CONFIG, **codecs_for(dtype))

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

