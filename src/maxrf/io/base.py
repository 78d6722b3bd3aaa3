"""The one reader interface every scan format implements.

A reader (a :class:`Scan`) describes a cube of ``height x width`` pixels by ``channels``
energy channels and hands it out in blocks of pixels with all their channels; convert,
the engine and ``maxrf info`` only ever use this interface, so they see no difference
between formats. A reader holds paths and small tables, never an open file or the cube:
it is picklable and is shipped as is to ``dask.distributed`` workers, each
:meth:`Scan.read_block` opening the file anew (or reusing a per-process handle dropped
on pickling).

The helpers here are shared by the readers: slice checking, JSON-safe metadata and a
linear fit of a per-channel energy vector.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from maxrf.errors import ParameterError

__all__ = [
    "FileScan",
    "Scan",
    "block_slices",
    "file_sources",
    "json_safe",
    "linear_calibration",
]


@runtime_checkable
class Scan(Protocol):
    """What convert, the engine and ``info`` need from a scan file of any format.

    Attributes
    ----------
    format : str
        Short name of the format (``'ripple'``, ``'crono'``, ``'bcf'``, ``'hdf5'``,
        ``'zarr'``).
    path : pathlib.Path
        The file the user named (the ``.rpl`` of a ripple pair).
    shape : tuple of int
        ``(height, width, channels)``.
    dtype : numpy.dtype
        Element type of the blocks returned (native byte order).
    calibration : tuple of float or None
        ``(gain_keV, offset_keV)`` the file states (energy of channel ``i`` is
        ``offset + gain * i`` keV), or None.
    """

    format: str
    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    calibration: tuple[float, float] | None

    @property
    def nbytes(self) -> int:
        """Size of the cube in memory (bytes)."""
        ...

    @property
    def metadata(self) -> dict[str, Any]:
        """Everything else the file says (header keys, instrument, positions), JSON-safe."""
        ...

    @property
    def source_files(self) -> list[Path]:
        """The files read (for provenance and sizes)."""
        ...

    def source_info(self) -> dict[str, Any]:
        """Provenance of a converted store (see :func:`file_sources`), JSON-safe."""
        ...

    def read_block(self, rows: slice, cols: slice | None = None) -> np.ndarray:
        """Pixels ``[rows, cols]`` with all channels: ``(r, c, channels)``, a C-contiguous copy."""
        ...


class FileScan:
    """What readers of one file (or one store folder) share: size, files, provenance.

    Subclasses (dataclasses) define ``format``, ``path``, ``shape``, ``dtype`` and
    ``info`` (the JSON-safe metadata dict).
    """

    format: str
    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    info: dict[str, Any]

    @property
    def nbytes(self) -> int:
        """Size of the decoded cube in memory (bytes)."""
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    @property
    def metadata(self) -> dict[str, Any]:
        """What the file says besides the counts (see the reader's module docstring)."""
        return dict(self.info)

    @property
    def source_files(self) -> list[Path]:
        """The file (or store folder) read."""
        return [self.path]

    def source_info(self) -> dict[str, Any]:
        """Provenance: format, file, size (bytes)."""
        return file_sources(self.source_files, self.format, self.path)


def block_slices(
    rows: Any, cols: Any, height: int, width: int
) -> tuple[range, range]:
    """Check and resolve the ``rows`` / ``cols`` of a :meth:`Scan.read_block` call.

    An engine ``Block`` (anything with ``.rows`` and ``.cols``) may be passed as ``rows``
    alone. Returns the row and column ``range`` objects.

    Raises
    ------
    ParameterError
        ``rows`` or ``cols`` is not a slice.
    """
    if cols is None and hasattr(rows, "rows") and hasattr(rows, "cols"):
        rows, cols = rows.rows, rows.cols
    if cols is None:
        cols = slice(None)
    if not isinstance(rows, slice) or not isinstance(cols, slice):
        raise ParameterError(f"read_block needs slices of rows and columns, got {rows!r} and {cols!r}")
    return range(*rows.indices(height)), range(*cols.indices(width))


def file_sources(files: list[Path], fmt: str, path: Path) -> dict[str, Any]:
    """The ``source`` provenance entry of a converted store: format, files and sizes (bytes)."""
    sizes: dict[str, int] = {}
    for f in files:
        try:
            sizes[str(Path(f).resolve())] = _tree_bytes(Path(f))
        except OSError:
            sizes[str(f)] = 0
    return {"format": fmt, "path": str(Path(path).resolve()), "files": sizes,
            "bytes": int(sum(sizes.values()))}


def _tree_bytes(p: Path) -> int:
    if p.is_dir():  # a zarr store is a folder
        return sum(os.stat(os.path.join(r, f)).st_size for r, _d, fs in os.walk(p) for f in fs)
    return os.stat(p).st_size


def json_safe(value: Any, *, max_items: int = 64) -> Any:
    """A JSON-safe copy of a metadata value: numpy scalars and small arrays to lists,
    bytes to text, large arrays summarised as ``{'shape', 'dtype'}``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, max_items=max_items) for k, v in value.items()}
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace").rstrip("\x00")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S" or (value.dtype.kind == "O" and value.size <= max_items):
            flat = [json_safe(v) for v in value.ravel().tolist()]
            if value.dtype.kind == "S" and value.dtype.itemsize == 1:
                return "".join(str(x) for x in flat)  # CRONO stores text as arrays of single chars
            return flat if len(flat) != 1 else flat[0]
        if value.dtype.kind in "biuf" and value.size <= max_items:
            return json_safe(value.ravel()[0] if value.size == 1 else value.tolist())
        return {"shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        if len(value) > max_items:
            return {"length": len(value)}
        return [json_safe(v, max_items=max_items) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def linear_calibration(
    energies: np.ndarray, tolerance_channels: float = 0.5
) -> tuple[tuple[float, float] | None, float]:
    """Fit ``E = offset + gain * channel`` to a per-channel energy vector (keV).

    Parameters
    ----------
    energies : numpy.ndarray
        ``(C,)`` energy of each channel, keV.
    tolerance_channels : float
        Largest deviation from the line accepted, in channels.

    Returns
    -------
    calibration : tuple of float or None
        ``(gain_keV, offset_keV)``, or None when the vector is not finite, not
        increasing, or departs from a line by more than ``tolerance_channels``.
    deviation_channels : float
        The largest deviation of the vector from the fitted line (channels; inf when
        there is no usable fit).
    """
    e = np.asarray(energies, dtype=np.float64).ravel()
    if e.size < 2 or not np.all(np.isfinite(e)):
        return None, math.inf
    ch = np.arange(e.size, dtype=np.float64)
    gain, offset = np.polyfit(ch, e, 1)
    if not gain > 0:
        return None, math.inf
    deviation = float(np.max(np.abs(offset + gain * ch - e)) / gain)
    if deviation > tolerance_channels:
        return None, deviation
    return (float(gain), float(offset)), deviation
