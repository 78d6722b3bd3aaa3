"""Reading a ripple scan: finding the ``.rpl`` / ``.raw`` pair, :class:`RippleScan`."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import (
    MissingFileError,
    ParameterError,
    RawSizeError,
    ScanFormatError,
)
from maxrf.io.ripple.header import RippleHeader, read_rpl

PREFETCH_PIECE = 1 << 20
"""Bytes per ``posix_fadvise(WILLNEED)`` call of :meth:`RippleScan.prefetch`: Linux caps
one call at the device's read-ahead (``max(read_ahead_kb, max_sectors_kb)``, often 0.5-8
MiB) and silently drops the rest of a longer range."""


def _partner(path: Path, ext: str) -> Path | None:
    """The file next to ``path`` with the same stem and extension ``ext`` (any case)."""
    stem = path.name[: len(path.name) - len(path.suffix)] if path.suffix else path.name
    upper = path.suffix.isupper()
    preferred = [ext.upper(), ext.lower()] if upper else [ext.lower(), ext.upper()]
    for e in preferred:
        candidate = path.with_name(stem + e)
        if candidate.is_file():
            return candidate
    try:
        entries = sorted(os.listdir(path.parent if str(path.parent) else "."))
    except OSError:
        return None
    for name in entries:
        if name[: len(stem)] == stem and name[len(stem) :].lower() == ext.lower():
            candidate = path.with_name(name)
            if candidate.is_file():
                return candidate
    return None


def _raw_size(raw_path: Path) -> int:
    try:
        st = os.stat(raw_path)
    except FileNotFoundError:
        raise MissingFileError("the .raw data file does not exist", raw_path) from None
    except OSError as exc:
        raise ScanFormatError(f"cannot read the .raw file: {exc.strerror or exc}", raw_path) from None
    if not os.path.isfile(raw_path):
        raise ScanFormatError("is not a regular file", raw_path)
    return st.st_size


def _check_raw_size(header: RippleHeader, rpl_path: Path, raw_path: Path) -> None:
    expected = header.nbytes + header.offset
    actual = _raw_size(raw_path)
    if actual != expected:
        raise RawSizeError(
            f"the .raw file is {actual} bytes but its header {rpl_path.name} asks for "
            f"{expected} bytes ({header.width} x {header.height} x {header.depth} values of "
            f"{header.data_length} bytes + offset {header.offset}); expected {expected}, "
            f"actual {actual}",
            raw_path,
        )


@dataclass(frozen=True)
class RippleScan:
    """A ripple scan on disk: the ``.rpl`` / ``.raw`` paths and the parsed header.

    Holds no open file: every :meth:`read_block` memory-maps the ``.raw`` read-only anew,
    so the object is picklable and can be shipped to ``dask.distributed`` workers.

    Attributes
    ----------
    rpl_path, raw_path : pathlib.Path
        The header and data files.
    header : RippleHeader
        The validated header.
    """

    rpl_path: Path
    raw_path: Path
    header: RippleHeader

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)``."""
        return self.header.shape

    @property
    def dtype(self) -> np.dtype:
        """The element type of the arrays returned (native byte order)."""
        return self.header.dtype.newbyteorder("=")

    @property
    def nbytes(self) -> int:
        """Size of the whole cube in memory (bytes)."""
        return self.header.nbytes

    @property
    def calibration(self) -> tuple[float, float] | None:
        """``(gain_keV, offset_keV)`` from the header, or ``None``."""
        return self.header.calibration

    def _memmap(self) -> np.memmap:
        h = self.header
        _check_raw_size(h, self.rpl_path, self.raw_path)
        try:
            return np.memmap(self.raw_path, dtype=h.dtype, mode="r", offset=h.offset, shape=h.raw_shape)
        except FileNotFoundError:
            raise MissingFileError("the .raw data file does not exist", self.raw_path) from None
        except (OSError, ValueError) as exc:
            raise ScanFormatError(f"cannot map the .raw file: {exc}", self.raw_path) from None

    def read_block(self, rows: slice | Any, cols: slice | None = None) -> np.ndarray:
        """Read the pixels ``[rows, cols]`` with all their channels.

        Parameters
        ----------
        rows, cols : slice
            Rows and columns of the cube (Python slice semantics). An engine ``Block``
            (anything with ``.rows`` and ``.cols``) may be passed alone instead.

        Returns
        -------
        numpy.ndarray
            ``(r, c, channels)``, native byte order, C-contiguous, a copy (the file
            is never written).

        Raises
        ------
        ParameterError
            ``rows`` or ``cols`` is not a slice.
        MissingFileError, RawSizeError, ScanFormatError
            The ``.raw`` file vanished, changed size or cannot be mapped.
        """
        if cols is None and hasattr(rows, "rows") and hasattr(rows, "cols"):
            rows, cols = rows.rows, rows.cols
        if cols is None:
            cols = slice(None)
        if not isinstance(rows, slice) or not isinstance(cols, slice):
            raise ParameterError(f"read_block needs slices of rows and columns, got {rows!r} and {cols!r}")
        h = self.header
        r = range(*rows.indices(h.height))
        c = range(*cols.indices(h.width))
        out = np.empty((len(r), len(c), h.depth), dtype=self.dtype)
        if out.size == 0:
            return out
        mm = self._memmap()
        try:
            if h.layout == "image":
                out[...] = mm[:, rows, cols].transpose(1, 2, 0)
            else:
                out[...] = mm[rows, cols, :]
        finally:
            mmap_obj = getattr(mm, "_mmap", None)
            del mm
            if mmap_obj is not None:
                try:
                    mmap_obj.close()
                except (BufferError, ValueError):  # still referenced elsewhere: GC closes it
                    pass
        return out

    def view_block(self, rows: slice, cols: slice | None = None) -> np.ndarray:
        """The pixels ``[rows, cols]`` as a read-only view of the ``.raw`` file's pages.

        For a block of whole rows of a vector-layout file in native byte order (one byte
        range of the file), the array maps just that range (``mmap``, unmapped when the
        array is freed): no copy, and the pages are read straight from the page cache by
        whoever uses the array. Anything else is :meth:`read_block`'s copy. The view must
        not outlive the pass that asked for it (it holds the mapping open); it never
        allows writing.
        """
        if cols is None:
            cols = slice(None)
        h = self.header
        if not isinstance(rows, slice) or not isinstance(cols, slice):
            return self.read_block(rows, cols)
        r = range(*rows.indices(h.height))
        c = range(*cols.indices(h.width))
        whole_rows = r.step == 1 and len(c) == h.width and c.step == 1
        if (h.layout != "vector" or not whole_rows or not r
                or h.dtype != h.dtype.newbyteorder("=")):
            return self.read_block(rows, cols)
        _check_raw_size(h, self.rpl_path, self.raw_path)
        row_bytes = h.width * h.depth * h.data_length
        start = h.offset + r.start * row_bytes
        base = start - start % mmap.ALLOCATIONGRANULARITY
        try:
            with open(self.raw_path, "rb") as f:
                mapped = mmap.mmap(f.fileno(), start - base + len(r) * row_bytes,
                                   access=mmap.ACCESS_READ, offset=base)
        except FileNotFoundError:
            raise MissingFileError("the .raw data file does not exist", self.raw_path) from None
        except (OSError, ValueError) as exc:
            raise ScanFormatError(f"cannot map the .raw file: {exc}", self.raw_path) from None
        view = np.frombuffer(mapped, dtype=h.dtype, count=len(r) * h.width * h.depth,
                             offset=start - base)
        return view.reshape(len(r), h.width, h.depth)

    def prefetch(self, rows: slice) -> None:
        """Ask the kernel to start reading rows ``rows`` of the ``.raw`` file into the page
        cache (``posix_fadvise WILLNEED``) and return at once, so that reading the next
        blocks from disk overlaps the work on this one. Best effort: does nothing for the
        image layout (a row is not one byte range) or where the call is missing."""
        h = self.header
        r = range(*rows.indices(h.height))
        if not r or h.layout != "vector" or not hasattr(os, "posix_fadvise"):
            return
        row_bytes = h.width * h.depth * h.data_length
        try:
            fd = os.open(self.raw_path, os.O_RDONLY)
        except OSError:
            return  # read_block will say what is wrong
        start, stop = h.offset + r.start * row_bytes, h.offset + r.stop * row_bytes
        try:
            # Linux reads at most max(read_ahead_kb, max_sectors_kb) per WILLNEED call (8 MiB
            # here; a 32 MiB call brought 8 MiB into the page cache): ask piece by piece
            for at in range(start, stop, PREFETCH_PIECE):
                os.posix_fadvise(fd, at, min(PREFETCH_PIECE, stop - at), os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def read_all(self) -> np.ndarray:
        """Read the whole cube ``(height, width, channels)`` (for tests and small scans)."""
        return self.read_block(slice(None), slice(None))

    # -- the reader interface of maxrf.io.base.Scan
    format = "ripple"

    @property
    def path(self) -> Path:
        """The ``.rpl`` header (the file the user names)."""
        return self.rpl_path

    @property
    def metadata(self) -> dict[str, str]:
        """Every key of the ``.rpl`` header, lower-cased, with its value string."""
        return dict(self.header.raw)

    @property
    def source_files(self) -> list[Path]:
        """The ``.rpl`` and ``.raw`` files."""
        return [self.rpl_path, self.raw_path]

    def source_info(self) -> dict[str, Any]:
        """Provenance of a converted store: format, files, sizes (bytes)."""
        from maxrf.io.base import file_sources

        info = file_sources(self.source_files, self.format, self.rpl_path)
        info.update(
            rpl=str(self.rpl_path.resolve()), raw=str(self.raw_path.resolve()),
            rpl_bytes=self.rpl_path.stat().st_size, raw_bytes=self.raw_path.stat().st_size,
        )
        return info


def _split_scan_path(path: Path) -> tuple[Path, Path]:
    """Given the .rpl, the .raw or the common stem, return (rpl_path, raw_path)."""
    suffix = path.suffix.lower()
    if suffix in (".rpl", ".raw"):
        what = {".rpl": "the .rpl header file", ".raw": "the .raw data file"}
        partner_what = {".rpl": "the .rpl header", ".raw": "the .raw data file"}
        other = ".raw" if suffix == ".rpl" else ".rpl"
        if not path.exists():
            raise MissingFileError(f"{what[suffix]} does not exist", path)
        partner = _partner(path, other)
        if partner is None:
            stem = path.name[: -len(path.suffix)]
            raise MissingFileError(
                f"{partner_what[other]} that goes with {path.name} does not exist",
                path.with_name(stem + (other.upper() if path.suffix.isupper() else other)),
            )
        return (path, partner) if suffix == ".rpl" else (partner, path)
    # a stem: PATH -> PATH.rpl + PATH.raw
    as_stem = path.with_name(path.name + ".x")
    rpl = _partner(as_stem, ".rpl")
    if rpl is None:
        if path.exists():
            raise ScanFormatError("is not a ripple scan (expected a .rpl header or a .raw data file)", path)
        raise MissingFileError(f"does not exist, and neither does {path.name}.rpl next to it", path)
    return _split_scan_path(rpl)


def open_scan(path: str | os.PathLike, lenient: bool = False) -> RippleScan:
    """Open a ripple scan: parse the header, find the partner file, check the sizes.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.rpl`` header, the ``.raw`` data file, or their common path without
        extension. The partner is the file next to it with the same stem and the other
        extension, in any letter case (``.raw`` / ``.RAW``).
    lenient : bool
        See :func:`read_rpl`.

    Returns
    -------
    RippleScan
        Paths and header; no data is read.

    Raises
    ------
    MissingFileError
        The ``.rpl`` or the ``.raw`` is missing.
    ScanFormatError
        The header is invalid (see :func:`read_rpl`).
    RawSizeError
        The ``.raw`` size is not ``width*height*depth*data-length + offset`` bytes.
    """
    rpl, raw = _split_scan_path(Path(path))
    header = read_rpl(rpl, lenient)
    _check_raw_size(header, rpl, raw)
    return RippleScan(rpl_path=rpl, raw_path=raw, header=header)
