"""CRONO MA-XRF scans (XGLab / Bruker CRONO): one HDF5 file per scan.

Format, as maxrf reads it:

======================================  ====================================================
dataset                                 content
======================================  ====================================================
``/XRF/Spectra``                        ``(N, C)`` every spectrum measured, in acquisition
                                        order (counts; any integer or float type)
``/XRF/SpectraSelectedIndex``           ``(H, W, 1)`` (or ``(H, W)``) integer: for each
                                        pixel of the regular scan grid, the row of
                                        ``/XRF/Spectra`` that lands on it
``/XRF/EnergyVector``                   ``(C,)`` energy of each channel, keV
everything else                         kept as metadata: small datasets and all
                                        attributes by value (text stored as arrays of
                                        single characters is joined), large ones (motor
                                        positions ``(N, 3)``, images) as shape and dtype
======================================  ====================================================

The cube is ``cube[i, j] = Spectra[SpectraSelectedIndex[i, j, 0]]``: the stage moves
continuously and the scanner records more spectra than grid pixels; the selected index
picks, per pixel, the spectrum measured nearest to it. A spectrum may serve several
pixels and some spectra serve none.

Where this comes from: the Rijksmuseum's ``cronomaxrf`` package (PyPI, version 0.0.12,
read for this module): ``gridify.gridify`` and ``interpolation.convert_crono`` open
``/XRF/Spectra`` as the spectra, take ``/XRF/SpectraSelectedIndex[:, :, 0]`` as the
``(H, W)`` grid of indices into them (``spectra[indices]``, reshaped to ``(H, W, C)``)
and ``/XRF/EnergyVector`` as the channel energies in keV (they look up Fe K-alpha at
6.402 keV in it); ``crono.read_datasets`` walks every dataset of the file and
``crono._get_attrs`` decodes attributes stored as arrays of ``S1`` characters;
``gridify.plot_the_problem`` plots the motor positions, an ``(N, 3)`` dataset of x, y,
z steps. maxrf has no CRONO file of its own: its tests write files of this layout with
h5py.

Decisions: the energy vector is fitted by a line (``E = offset + gain * channel``) and
that line is the scan's calibration when it departs from the vector by at most half a
channel, else the scan has no header calibration (convert then calibrates from the
spectra) and the deviation is kept in the metadata. An index outside ``[0, N)`` is an
error, named at open. Blocks read only the runs of ``/XRF/Spectra`` their pixels use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import MissingFileError, ScanFormatError
from maxrf.io.base import FileScan, block_slices, json_safe, linear_calibration
from maxrf.io.hdf5 import cube_dtype

__all__ = ["ENERGIES", "INDEX", "SPECTRA", "CronoScan", "is_crono"]

SPECTRA = "/XRF/Spectra"
INDEX = "/XRF/SpectraSelectedIndex"
ENERGIES = "/XRF/EnergyVector"

_GAP = 64  # spectra between two used ones below which one contiguous read is cheaper
_SMALL = 64  # datasets with at most this many values are kept in full in the metadata


def is_crono(path: str | os.PathLike) -> bool:
    """True if the HDF5 file at ``path`` has the CRONO spectra or grid index dataset (a file
    with only one of them is a damaged CRONO file, and is reported as such)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return SPECTRA in f or INDEX in f
    except OSError:
        return False


@dataclass
class CronoScan(FileScan):
    """A CRONO scan (see the module docstring); picklable, holds no open file."""

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    calibration: tuple[float, float] | None
    n_spectra: int
    info: dict[str, Any] = field(default_factory=dict)
    format = "crono"

    @classmethod
    def open(cls, path: str | os.PathLike) -> CronoScan:
        """Check the layout and the grid indices; read the energies and the metadata.

        Raises
        ------
        MissingFileError
            No file at ``path``.
        ScanFormatError
            A dataset is missing or has the wrong shape or type, or an index is outside
            the spectra.
        """
        import h5py

        p = Path(path)
        try:
            with h5py.File(p, "r") as f:
                return cls._from_file(p, f, h5py)
        except FileNotFoundError:
            raise MissingFileError("does not exist", p) from None
        except OSError as exc:
            raise ScanFormatError(f"cannot read as HDF5: {exc}", p) from None

    @classmethod
    def _from_file(cls, p: Path, f: Any, h5py: Any) -> CronoScan:
        for name in (SPECTRA, INDEX):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise ScanFormatError(f"is not a CRONO scan: dataset {name} is missing", p)
        spectra, index = f[SPECTRA], f[INDEX]
        if spectra.ndim != 2 or 0 in spectra.shape:
            raise ScanFormatError(f"{SPECTRA} has shape {spectra.shape}; expected (spectra, channels)", p)
        n, c = (int(s) for s in spectra.shape)
        dtype = cube_dtype(spectra.dtype, p, SPECTRA)
        if not (index.ndim == 2 or (index.ndim == 3 and index.shape[2] == 1)) or 0 in index.shape:
            raise ScanFormatError(f"{INDEX} has shape {index.shape}; expected (height, width, 1)", p)
        if index.dtype.kind not in "iu":
            raise ScanFormatError(f"{INDEX} has dtype {index.dtype}; expected integers", p)
        h, w = int(index.shape[0]), int(index.shape[1])
        _check_indices(index, n, p)
        info: dict[str, Any] = {"n_spectra": n}
        cal = None
        if ENERGIES in f:
            energies = np.asarray(f[ENERGIES][()], dtype=np.float64).ravel()
            if energies.shape != (c,):
                raise ScanFormatError(
                    f"{ENERGIES} has {energies.size} values for {c} channels of {SPECTRA}", p
                )
            cal, deviation = linear_calibration(energies)
            info["energy_vector"] = {"first_keV": float(energies[0]), "last_keV": float(energies[-1]),
                                     "linear_fit_deviation_channels": deviation}
        else:
            info["energy_vector"] = None
        info["datasets"] = _other_datasets(f, h5py, n)
        info["attributes"] = _all_attributes(f, h5py)
        return cls(p, (h, w, c), dtype, cal, n, info)

    def read_block(self, rows: Any, cols: slice | None = None) -> np.ndarray:
        """Pixels ``[rows, cols]``, all channels: ``(r, c, channels)`` in :attr:`dtype`.

        Only the runs of ``/XRF/Spectra`` the block's pixels select are read.
        """
        import h5py

        r, c = block_slices(rows, cols, self.shape[0], self.shape[1])
        out = np.empty((len(r), len(c), self.shape[2]), dtype=self.dtype)
        if out.size == 0:
            return out
        try:
            with h5py.File(self.path, "r") as f:
                index = f[INDEX]
                sel = (slice(r.start, r.stop, r.step), slice(c.start, c.stop, c.step))
                idx = np.asarray(index[sel + ((0,) if index.ndim == 3 else ())], dtype=np.int64)
                used, inverse = np.unique(idx.ravel(), return_inverse=True)
                if used.size and (used[0] < 0 or used[-1] >= self.n_spectra):
                    raise ScanFormatError(f"{INDEX} points outside the {self.n_spectra} spectra", self.path)
                picked = np.empty((used.size, self.shape[2]), dtype=self.dtype)
                breaks = np.flatnonzero(np.diff(used) > _GAP) + 1
                for run in np.split(np.arange(used.size), breaks):
                    lo, hi = int(used[run[0]]), int(used[run[-1]]) + 1
                    picked[run] = f[SPECTRA][lo:hi][used[run] - lo]
        except (OSError, KeyError) as exc:
            raise ScanFormatError(f"cannot read the CRONO spectra: {exc}", self.path) from None
        out[...] = picked[inverse].reshape(out.shape)
        return out


def _check_indices(index: Any, n: int, path: Path) -> None:
    """Refuse a grid index outside ``[0, n)`` (read a few rows at a time)."""
    step = max(1, (1 << 22) // max(1, int(np.prod(index.shape[1:]))))
    for r0 in range(0, index.shape[0], step):
        part = np.asarray(index[r0:r0 + step])
        lo, hi = int(part.min()), int(part.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ScanFormatError(
                f"{INDEX} holds index {bad}, outside the {n} spectra of {SPECTRA}", path
            )


def _other_datasets(f: Any, h5py: Any, n: int) -> dict[str, Any]:
    """Every dataset but the three read as data: small ones by value, else shape/dtype."""
    out: dict[str, Any] = {}

    def visit(name: str, obj: Any) -> None:
        full = "/" + name
        if not isinstance(obj, h5py.Dataset) or full in (SPECTRA, INDEX, ENERGIES):
            return
        entry: dict[str, Any] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}
        if obj.size <= _SMALL:
            entry["value"] = json_safe(obj[()])
        elif obj.ndim == 2 and obj.shape[0] == n and obj.shape[1] in (2, 3):
            entry["per_spectrum"] = "positions (x, y[, z]) of each spectrum"
        out[full] = entry

    f.visititems(visit)
    return out


def _all_attributes(f: Any, h5py: Any) -> dict[str, Any]:
    """Attributes of the file and of every group and dataset, by object path."""
    out: dict[str, Any] = {}
    if f.attrs:
        out["/"] = json_safe(dict(f.attrs))

    def visit(name: str, obj: Any) -> None:
        if obj.attrs:
            out["/" + name] = json_safe(dict(obj.attrs))

    f.visititems(visit)
    return out
