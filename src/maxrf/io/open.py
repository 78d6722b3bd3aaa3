"""Choose the reader of a scan file: :func:`open_scan`.

The format is recognised from the file itself where it can be (HDF5 by its signature,
a CRONO file by its ``/XRF`` datasets, a zarr store by its ``zarr.json`` / ``.zarray``),
else from the extension (``.rpl`` / ``.raw``, ``.bcf``). Every reader implements
:class:`maxrf.io.base.Scan`.
"""

from __future__ import annotations

import os
from pathlib import Path

from maxrf.errors import MissingFileError, ParameterError, ScanFormatError
from maxrf.io.base import Scan

__all__ = ["SUPPORTED", "detect_format", "open_scan"]

SUPPORTED = (
    "ripple .rpl/.raw (Bruker M6, Lispix); "
    "CRONO HDF5 (/XRF/Spectra + /XRF/SpectraSelectedIndex); "
    "Bruker .bcf hypermaps (M4 Tornado, Esprit); "
    "a 3-D (height, width, channels) dataset of any HDF5 file or zarr store (--dataset /path)"
)
"""The formats :func:`open_scan` reads, as one line for error messages."""

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".hspy")


def _is_hdf5(path: Path) -> bool:
    """True if the file carries the HDF5 signature (at 0, 512, 1024, ... bytes)."""
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048, 4096):
                f.seek(offset)
                head = f.read(8)
                if head == _HDF5_SIGNATURE:
                    return True
                if len(head) < 8:
                    return False
    except OSError:
        return False
    return False


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_file() for name in ("zarr.json", ".zarray", ".zgroup")
    )


def detect_format(path: str | os.PathLike) -> str:
    """The format name of ``path``: ``'ripple'``, ``'crono'``, ``'bcf'``, ``'hdf5'``, ``'zarr'``.

    Raises
    ------
    MissingFileError
        Nothing exists at ``path`` (nor a ``.rpl`` next to it).
    ScanFormatError
        The file is none of the supported formats (the message lists them).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".rpl", ".raw"):
        return "ripple"
    if not p.exists():
        if not suffix or any(p.with_name(p.name + e).is_file() for e in (".rpl", ".RPL")):
            return "ripple"  # a stem: the ripple reader names what is missing
        raise MissingFileError("does not exist", p)
    if suffix == ".datastack" or (p / "maxrf.json").is_file():
        raise ScanFormatError("is already a maxrf datastack, not a scan to convert", p)
    if _is_zarr(p):
        return "zarr"
    if p.is_dir():
        raise ScanFormatError(f"is a folder, not a scan file; supported: {SUPPORTED}", p)
    if suffix == ".bcf":
        return "bcf"
    if _is_hdf5(p):
        from maxrf.io.crono import is_crono

        return "crono" if is_crono(p) else "hdf5"
    if suffix in _HDF5_EXTENSIONS:
        raise ScanFormatError("has an HDF5 extension but no HDF5 signature (damaged or not HDF5)", p)
    raise ScanFormatError(f"is not a scan format maxrf reads; supported: {SUPPORTED}", p)


def open_scan(path: str | os.PathLike, dataset: str | None = None, lenient: bool = False) -> Scan:
    """Open a scan of any supported format; no cube data is read.

    Parameters
    ----------
    path : str or os.PathLike
        The scan: a ``.rpl`` / ``.raw`` (or their common stem), a CRONO ``.HDF5``, a
        Bruker ``.bcf``, an HDF5 file or a zarr store holding a cube.
    dataset : str, optional
        Path of the ``(height, width, channels)`` cube inside an HDF5 file or zarr store
        (``--dataset /path``). Required for plain HDF5 / zarr; for CRONO it selects the
        plain-cube reader instead of the CRONO layout; refused for other formats.
    lenient : bool
        Ripple headers only: read a header with a misspelt-looking key, ignoring the key
        (see :func:`maxrf.io.ripple.open_scan`).

    Returns
    -------
    Scan
        A reader (see :class:`maxrf.io.base.Scan`).

    Raises
    ------
    MissingFileError, ScanFormatError
        Missing file, unsupported or malformed format (the message names the file and
        lists the supported formats).
    ParameterError
        ``dataset`` given for a format that has none.
    """
    fmt = detect_format(path)
    if dataset is not None and fmt in ("ripple", "bcf"):
        raise ParameterError(f"--dataset applies to HDF5 files and zarr stores, not to a {fmt} scan ({path})")
    if fmt == "ripple":
        from maxrf.io.ripple import open_scan as open_ripple

        return open_ripple(path, lenient=lenient)
    if fmt == "bcf":
        from maxrf.io.bcf import BcfScan

        return BcfScan.open(path)
    if fmt == "zarr":
        from maxrf.io.hdf5 import ZarrCubeScan

        return ZarrCubeScan.open(path, dataset)
    if fmt == "crono" and dataset is None:
        from maxrf.io.crono import CronoScan

        return CronoScan.open(path)
    from maxrf.io.hdf5 import Hdf5CubeScan

    return Hdf5CubeScan.open(path, dataset)
