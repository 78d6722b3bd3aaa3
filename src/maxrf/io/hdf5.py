"""A plain cube in an HDF5 file or a zarr store: ``--dataset /path/to/cube``.

Format (what maxrf expects; nothing here is vendor-specific):

* The dataset named by the user is a 3-D array ``(height, width, channels)`` of any
  integer or floating type (either byte order; booleans are read as ``uint8``).
  Complex, string and compound types, and arrays of other dimensions, are refused.
  HDF5 chunking and compression filters are whatever the writer chose; blocks are
  read with plain slicing, so a file chunked along the channels (``(1, 1, C)`` or
  ``(r, c, C)``) reads fastest.
* Calibration, in this order: attributes ``gain_keV`` and ``offset_keV`` on the
  dataset; attributes ``energy_gain`` / ``energy_offset`` in keV (an ``energy_units``
  attribute of ``eV`` scales them); a 1-D sibling dataset (same parent group) named
  ``energies``, ``energy``, ``EnergyVector`` or ``energy_keV`` of length ``channels``
  in keV, fitted by a line (refused if it departs by more than half a channel).
* Every other attribute of the dataset and its parent group is kept as metadata
  (small values in full, arrays as shape and dtype).

The same rules hold for a zarr store (a folder with ``zarr.json``, or zarr v2
``.zarray`` / ``.zgroup``); a store that *is* the array needs no dataset path. Zarr
stores are read through :func:`dask.array.from_zarr`, so zarr stays the store's
business.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import MissingFileError, ParameterError, ScanFormatError
from maxrf.io.base import FileScan, block_slices, json_safe, linear_calibration

__all__ = ["Hdf5CubeScan", "ZarrCubeScan", "cube_dtype"]

_ENERGY_NAMES = ("energies", "energy", "EnergyVector", "energy_keV")


def cube_dtype(dtype: np.dtype, path: Path, what: str) -> np.dtype:
    """The native-order dtype blocks are returned in, or a ScanFormatError."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.dtype(np.uint8)
    if dt.kind not in "iuf":
        raise ScanFormatError(f"{what} has dtype {dt}; a cube must hold integer or float counts", path)
    return dt.newbyteorder("=")


def _calibration_from(attrs: Any, siblings: dict[str, np.ndarray], n: int, path: Path, what: str
                      ) -> tuple[tuple[float, float] | None, str | None]:
    """(calibration, where it came from) per the module's rules."""
    def number(key: str) -> float:
        try:
            value = float(np.asarray(attrs[key]).ravel()[0])
        except (TypeError, ValueError, IndexError):
            raise ScanFormatError(f"{what}: attribute {key!r} is not a number", path) from None
        if not np.isfinite(value):
            raise ScanFormatError(f"{what}: attribute {key!r} is not finite", path)
        return value

    if "gain_keV" in attrs and "offset_keV" in attrs:
        gain, offset = number("gain_keV"), number("offset_keV")
        return ((gain, offset) if gain > 0 else None), "attributes gain_keV/offset_keV"
    if "energy_gain" in attrs and "energy_offset" in attrs:
        units = json_safe(attrs["energy_units"]) if "energy_units" in attrs else "keV"
        scale = 1e-3 if str(units).strip().lower() == "ev" else 1.0
        gain, offset = number("energy_gain") * scale, number("energy_offset") * scale
        return ((gain, offset) if gain > 0 else None), "attributes energy_gain/energy_offset"
    for name, vector in siblings.items():
        if vector.ndim == 1 and vector.shape[0] == n:
            cal, _dev = linear_calibration(vector)
            return cal, f"dataset {name}"
    return None, None


@dataclass
class Hdf5CubeScan(FileScan):
    """A ``(height, width, channels)`` dataset of an HDF5 file (see the module docstring)."""

    path: Path
    dataset: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    calibration: tuple[float, float] | None
    info: dict[str, Any] = field(default_factory=dict)
    format = "hdf5"

    @classmethod
    def open(cls, path: str | os.PathLike, dataset: str | None) -> Hdf5CubeScan:
        """Open ``dataset`` of the HDF5 file ``path`` (no cube data is read)."""
        import h5py

        p = Path(path)
        if dataset is None:
            raise ParameterError(
                f"{p}: an HDF5 file without the CRONO layout needs --dataset /path/to/cube"
                f"{_candidates_text(p)}"
            )
        try:
            with h5py.File(p, "r") as f:
                if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                    raise ScanFormatError(
                        f"has no dataset {dataset!r}{_candidates_text(p, f)}", p
                    )
                d = f[dataset]
                shape, dtype = _check_cube(d.shape, d.dtype, p, f"dataset {dataset!r}")
                parent = d.parent
                siblings = {k: parent[k][()] for k in _ENERGY_NAMES
                            if k in parent and isinstance(parent[k], h5py.Dataset)
                            and parent[k].ndim == 1 and parent[k].shape[0] == shape[2]}
                cal, source = _calibration_from(d.attrs, siblings, shape[2], p, f"dataset {dataset!r}")
                attrs = {"dataset": dataset, "attrs": json_safe(dict(d.attrs)),
                         "group_attrs": json_safe(dict(parent.attrs)), "calibration_from": source}
        except FileNotFoundError:
            raise MissingFileError("does not exist", p) from None
        except OSError as exc:
            raise ScanFormatError(f"cannot read as HDF5: {exc}", p) from None
        return cls(p, dataset, shape, dtype, cal, attrs)

    def source_info(self) -> dict[str, Any]:
        """Provenance: format, file, size, dataset path."""
        return {**super().source_info(), "dataset": self.dataset}

    def read_block(self, rows: Any, cols: slice | None = None) -> np.ndarray:
        """Pixels ``[rows, cols]``, all channels: ``(r, c, channels)`` in :attr:`dtype`."""
        import h5py

        r, c = block_slices(rows, cols, self.shape[0], self.shape[1])
        out = np.empty((len(r), len(c), self.shape[2]), dtype=self.dtype)
        if out.size == 0:
            return out
        try:
            with h5py.File(self.path, "r") as f:
                data = f[self.dataset][r.start:r.stop:r.step, c.start:c.stop:c.step, :]
        except (OSError, KeyError) as exc:
            raise ScanFormatError(f"cannot read dataset {self.dataset!r}: {exc}", self.path) from None
        out[...] = data
        return out


@dataclass
class ZarrCubeScan(FileScan):
    """A ``(height, width, channels)`` array of a zarr store (see the module docstring)."""

    path: Path
    dataset: str | None
    shape: tuple[int, int, int]
    dtype: np.dtype
    calibration: tuple[float, float] | None
    info: dict[str, Any] = field(default_factory=dict)
    format = "zarr"

    def __post_init__(self) -> None:
        self._array: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    @classmethod
    def open(cls, path: str | os.PathLike, dataset: str | None) -> ZarrCubeScan:
        """Open the array ``dataset`` of the zarr store ``path`` (the store itself if None)."""
        p = Path(path)
        component = dataset.strip("/") if dataset else None
        array = _dask_zarr(p, component)
        what = f"array {dataset!r}" if dataset else "the zarr array"
        shape, dtype = _check_cube(array.shape, array.dtype, p, what)
        siblings: dict[str, np.ndarray] = {}
        parent = "/".join(component.split("/")[:-1]) if component else None
        if component:
            for name in _ENERGY_NAMES:
                try:
                    vec = _dask_zarr(p, f"{parent}/{name}" if parent else name, quiet=True)
                except ScanFormatError:
                    continue
                if vec.ndim == 1 and vec.shape[0] == shape[2]:
                    siblings[name] = np.asarray(vec.compute())
        attrs = _zarr_attrs(p, component)
        cal, source = _calibration_from(attrs, siblings, shape[2], p, what)
        meta = {"dataset": dataset, "attrs": json_safe(attrs), "calibration_from": source}
        return cls(p, dataset, shape, dtype, cal, meta)

    def source_info(self) -> dict[str, Any]:
        """Provenance: format, store, size, array path."""
        return {**super().source_info(), "dataset": self.dataset}

    def read_block(self, rows: Any, cols: slice | None = None) -> np.ndarray:
        """Pixels ``[rows, cols]``, all channels: ``(r, c, channels)`` in :attr:`dtype`."""
        r, c = block_slices(rows, cols, self.shape[0], self.shape[1])
        out = np.empty((len(r), len(c), self.shape[2]), dtype=self.dtype)
        if out.size == 0:
            return out
        if self._array is None:
            component = self.dataset.strip("/") if self.dataset else None
            self._array = _dask_zarr(self.path, component)
        part = self._array[r.start:r.stop:r.step, c.start:c.stop:c.step, :]
        try:
            out[...] = part.compute(scheduler="synchronous")
        except Exception as exc:  # zarr raises plain errors on damaged chunks
            raise ScanFormatError(f"cannot read the zarr cube: {exc}", self.path) from None
        return out


def _check_cube(shape: tuple[int, ...], dtype: Any, path: Path, what: str
                ) -> tuple[tuple[int, int, int], np.dtype]:
    if len(shape) != 3 or 0 in shape:
        raise ScanFormatError(
            f"{what} has shape {tuple(shape)}; a cube must be 3-D (height, width, channels)", path
        )
    return (int(shape[0]), int(shape[1]), int(shape[2])), cube_dtype(dtype, path, what)


def _dask_zarr(path: Path, component: str | None, quiet: bool = False) -> Any:
    import dask.array as da

    try:
        return da.from_zarr(str(path), component=component)
    except Exception as exc:  # zarr raises KeyError, FileNotFoundError, its own errors
        where = f"array {component!r}" if component else "an array at the top level"
        raise ScanFormatError(
            f"has no zarr {where} ({type(exc).__name__}: {exc}); pass --dataset /path/to/cube", path
        ) from None


def _zarr_attrs(path: Path, component: str | None) -> dict[str, Any]:
    """Attributes of a zarr v3 (``zarr.json``) or v2 (``.zattrs``) array, read as JSON."""
    import json

    folder = path / component if component else path
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        f = folder / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                return {}
            return dict(doc.get(key, {}) if key else doc)
    return {}


def _candidates_text(path: Path, f: Any = None) -> str:
    """'; 3-D datasets in the file: /a, /b' (or '') to help the user pick --dataset."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim == 3 and len(found) < 10:
            found.append("/" + name)

    try:
        if f is None:
            with h5py.File(path, "r") as g:
                g.visititems(visit)
        else:
            f.visititems(visit)
    except OSError:
        return ""
    return f"; 3-D datasets in the file: {', '.join(found)}" if found else "; it holds no 3-D dataset"
