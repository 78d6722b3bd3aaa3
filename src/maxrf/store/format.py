"""The store's on-disk format: manifest, codecs, atomic files and the writer lock."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import (
    ConcurrentWriteError,
    DataStackVersionError,
    DiskFullError,
    MissingFileError,
    NotADataStackError,
    ParameterError,
)

if TYPE_CHECKING:
    import zarr

FORMAT = "maxrf.datastack"
FORMAT_VERSION = 1
MANIFEST = "maxrf.json"
LOCK = ".write.lock"
LAYERS = "layers"


COMPRESSIONS = {"lz4": ("lz4", 5), "zstd": ("zstd", 1), "none": None}
"""``--compression`` choices: blosc codec and level (all bit-shuffled), or none (checksum only).
See benchmarks/results/convert.json (``codecs``) for speed and ratio of each on counts."""

DEFAULT_COMPRESSION = "lz4"

ARRAY_CONFIG = {"write_empty_chunks": True}
"""zarr array options of every maxrf array: a chunk that holds only the fill value is still
written (zarr 3 skips it by default), so every chunk has its file and checksum and
:func:`maxrf.verify.verify` can tell a missing chunk from a map that is zero there."""


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
        config=ARRAY_CONFIG,
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

