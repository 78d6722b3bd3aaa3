"""Bruker / Lispix "ripple" scans: a ``.rpl`` text header and a ``.raw`` binary cube.

The ``.rpl`` header is a list of ``key value`` lines (tab or space separated). Keys are
case-insensitive (Bruker writes ``data-Length``); an optional first line reading
literally ``key value`` is skipped, as are empty lines and lines starting with ``;`` or
``#``; anything after a ``;`` on a line is a comment. The keys read are:

============  =========================================  ==========================
key           values                                     default
============  =========================================  ==========================
width         pixels per row (>= 1)                      required
height        rows (>= 1)                                required
depth         channels per pixel (>= 1)                  required
data-length   bytes per value: 1, 2, 4, 8                required
data-type     ``unsigned``, ``signed``, ``float``        required
offset        bytes to skip at the start of the .raw     0
byte-order    ``little-endian``, ``big-endian``,         ``dont-care``
              ``dont-care``
record-by     ``vector`` (raw layout (height, width,     ``vector``
              depth)), ``image`` (raw layout (depth,
              height, width)), ``dont-care``
============  =========================================  ==========================

Decisions where the format is loose:

* ``float`` needs ``data-length`` 4 or 8.
* ``byte-order dont-care`` with ``data-length`` > 1 is read as little-endian (what every
  writer of such files in practice means: the x86 machine that wrote them).
* ``record-by dont-care`` is read as ``vector``.
* The energy calibration (gain and offset in keV, energy of channel ``i`` =
  ``offset + gain * i``) is taken, in this order of preference, from the Bruker M6 keys
  ``depthscaleincrement`` / ``depthscaleorigin`` (keV); the rosettasciio keys
  ``depth-scale`` / ``depth-origin`` when ``depth-units`` is ``eV`` or ``keV``; the
  Lispix key ``ev-per-chan`` (eV, origin 0). A zero or negative gain counts as no
  calibration (rosettasciio writes ``ev-per-chan 0`` for gains below 0.5 eV); a
  calibration value that is not a finite number is an error.
* A header larger than 1 MB, or one that is binary rather than text (a NUL byte, or
  more than 5 % control bytes), is refused; so is a header asking for more than 2**50
  bytes of data, and a key repeated with a different value. Numbers are ASCII decimal
  integers (a leading ``+`` is allowed); calibration values may use a decimal comma.

The ``.raw`` file is only ever memory-mapped read-only (``np.memmap`` mode ``'r'``); it
is opened anew by every :meth:`RippleScan.read_block` call, so a :class:`RippleScan` is
small, picklable and usable on ``dask.distributed`` workers.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import (
    DiskFullError,
    MaxrfError,
    MissingFileError,
    OutputExistsError,
    OutputLocationError,
    ParameterError,
    RawSizeError,
    ScanFormatError,
)

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_HEADER_BYTES",
    "RippleHeader",
    "RippleScan",
    "RippleWriter",
    "open_scan",
    "read_rpl",
    "write_ripple",
]

MAX_HEADER_BYTES = 1 << 20
"""Largest ``.rpl`` header accepted (bytes)."""

MAX_DATA_BYTES = 1 << 50
"""Largest data size (bytes) a header may ask for; larger requests are refused unread."""

_REQUIRED = ("width", "height", "depth", "data-length", "data-type")
_DATA_TYPES = ("unsigned", "signed", "float")
_BYTE_ORDERS = ("little-endian", "big-endian", "dont-care")
_RECORD_BYS = ("vector", "image", "dont-care")
_DATA_LENGTHS = (1, 2, 4, 8)
# Keys whose value we interpret: a file repeating one of them with another value is refused.
_INTERPRETED = frozenset(
    (
        "width",
        "height",
        "depth",
        "offset",
        "data-length",
        "data-type",
        "byte-order",
        "record-by",
        "depthscaleincrement",
        "depthscaleorigin",
        "depth-scale",
        "depth-origin",
        "depth-units",
        "ev-per-chan",
    )
)
# Keys other writers use that we do not interpret (rosettasciio, Lispix, Bruker): known, so
# neither reported as unknown nor taken for a misspelling of one we read.
_KNOWN_OTHER = frozenset(
    f"{axis}-{part}" for axis in ("width", "height", "depth")
    for part in ("origin", "scale", "units", "name", "size")
) | frozenset((
    "signal", "title", "date", "time", "beam-energy", "elevation-angle", "azimuth-angle",
    "live-time", "tilt-stage", "detector-peak-width-ev", "real-time", "signal-type",
    "record_by", "pixel-size", "pixelsize", "comment", "instrument", "sample",
))
_NEAR_MISS = 2
"""Largest edit distance (on keys without '-' and '_') at which an unknown key is taken for
a misspelling of a key we read: an error naming the likely key, not a silent default."""
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CONTROL_BYTES = bytes((*range(0, 9), *range(14, 32), 127))
_KIND = {"unsigned": "u", "signed": "i", "float": "f"}
_KIND_NAME = {"u": "unsigned", "i": "signed", "f": "float"}


def _key_display(key: str) -> str:
    return f"'{key}'"


def _value_display(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class RippleHeader:
    """The parsed, validated content of a ``.rpl`` header.

    Attributes
    ----------
    width, height, depth : int
        Pixels per row, rows, channels per pixel.
    offset : int
        Bytes to skip at the start of the ``.raw`` file.
    data_length : int
        Bytes per value (1, 2, 4 or 8).
    data_type : str
        ``'unsigned'``, ``'signed'`` or ``'float'``.
    byte_order : str
        ``'little-endian'``, ``'big-endian'`` or ``'dont-care'`` (read as little-endian).
    record_by : str
        ``'vector'``, ``'image'`` or ``'dont-care'`` (read as vector).
    calibration : tuple of float or None
        ``(gain_keV, offset_keV)``: the energy of channel ``i`` is ``offset + gain * i`` keV.
    raw : dict of str to str
        Every key of the header, lower-cased, with its value string.
    unknown_keys : tuple of str
        Keys neither read nor known from other writers (reported, not used).
    warnings : tuple of str
        Misspelt-looking keys ignored because the header was read leniently.
    """

    width: int
    height: int
    depth: int
    offset: int
    data_length: int
    data_type: str
    byte_order: str
    record_by: str
    calibration: tuple[float, float] | None
    raw: dict[str, str] = field(default_factory=dict, compare=False)
    unknown_keys: tuple[str, ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def dtype(self) -> np.dtype:
        """The element type as stored in the ``.raw`` file (with its byte order)."""
        kind = _KIND[self.data_type]
        if self.data_length == 1:
            return np.dtype(f"|{kind}1")
        order = ">" if self.byte_order == "big-endian" else "<"
        return np.dtype(f"{order}{kind}{self.data_length}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The cube shape ``(height, width, depth)`` (rows, columns, channels)."""
        return (self.height, self.width, self.depth)

    @property
    def layout(self) -> str:
        """The raw layout actually read: ``'vector'`` or ``'image'``."""
        return "image" if self.record_by == "image" else "vector"

    @property
    def raw_shape(self) -> tuple[int, int, int]:
        """The shape of the data in the ``.raw`` file, in storage order."""
        if self.layout == "image":
            return (self.depth, self.height, self.width)
        return (self.height, self.width, self.depth)

    @property
    def nbytes(self) -> int:
        """Size of the data (bytes, without the offset): width*height*depth*data_length."""
        return self.width * self.height * self.depth * self.data_length


def _decode_header(data: bytes, path: Path) -> str:
    if not data.strip():
        raise ScanFormatError("the .rpl header is empty", path)
    if b"\x00" in data:
        raise ScanFormatError("the .rpl header is binary data (NUL bytes), not a text header", path)
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if controls > max(2, len(data) // 20):
        raise ScanFormatError(
            f"the .rpl header is binary data ({controls} control bytes), not a text header", path
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text


def _parse_lines(text: str, path: Path) -> dict[str, str]:
    """Split header text into a ``{lower-cased key: value}`` dict."""
    raw: dict[str, str] = {}
    first = True
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if ";" in stripped:
            stripped = stripped[: stripped.index(";")].strip()
            if not stripped:
                continue
        parts = stripped.split(None, 1)
        key = parts[0].lower()
        value = parts[1].strip() if len(parts) > 1 else ""
        if first:
            first = False
            if key == "key" and value.lower() == "value":
                continue
        if key in raw and raw[key] != value and key in _INTERPRETED:
            if raw[key].lower() != value.lower():
                raise ScanFormatError(
                    f"header key {_key_display(key)} is given twice with different values "
                    f"({_value_display(raw[key])} and {_value_display(value)})",
                    path,
                )
        raw[key] = value
    return raw


def _int_value(raw: Mapping[str, str], key: str, path: Path, *, minimum: int) -> int:
    value = raw[key]
    if not _INT_RE.fullmatch(value):
        raise ScanFormatError(
            f"header key {_key_display(key)} has value {_value_display(value)}, which is not a whole number",
            path,
        )
    if len(value.lstrip("+-")) > 20:
        raise ScanFormatError(
            f"header key {_key_display(key)} has value {_value_display(value)}, which is too large",
            path,
        )
    number = int(value)
    if number < minimum:
        what = "negative" if number < 0 else "zero"
        raise ScanFormatError(
            f"header key {_key_display(key)} has value {_value_display(value)}, which is {what} "
            f"(it must be at least {minimum})",
            path,
        )
    if number > MAX_DATA_BYTES:
        raise ScanFormatError(
            f"header key {_key_display(key)} has value {_value_display(value)}, which is "
            f"absurdly large (more than 2**50)",
            path,
        )
    return number


def _choice_value(
    raw: Mapping[str, str], key: str, choices: tuple[str, ...], path: Path, default: str
) -> str:
    if key not in raw:
        return default
    value = raw[key].lower()
    if value not in choices:
        raise ScanFormatError(
            f"header key {_key_display(key)} has unsupported value {_value_display(raw[key])} "
            f"(expected one of: {', '.join(choices)})",
            path,
        )
    return value


def _float_value(raw: Mapping[str, str], key: str, path: Path) -> float:
    value = raw[key]
    text = value.replace(",", ".") if "," in value and "." not in value else value
    if not _FLOAT_RE.fullmatch(text):
        raise ScanFormatError(
            f"header key {_key_display(key)} has value {_value_display(value)}, which is not a number",
            path,
        )
    number = float(text)
    if not math.isfinite(number):
        raise ScanFormatError(
            f"header key {_key_display(key)} has value {_value_display(value)}, which is not a finite number",
            path,
        )
    return number


def _calibration(raw: Mapping[str, str], path: Path) -> tuple[float, float] | None:
    """The (gain_keV, offset_keV) calibration the header carries, if any."""
    gain: float | None = None
    origin = 0.0
    if "depthscaleincrement" in raw:  # Bruker M6, keV
        gain = _float_value(raw, "depthscaleincrement", path)
        if "depthscaleorigin" in raw:
            origin = _float_value(raw, "depthscaleorigin", path)
    elif "depth-scale" in raw and raw.get("depth-units", "").strip().lower() in ("ev", "kev"):
        factor = 1e-3 if raw["depth-units"].strip().lower() == "ev" else 1.0
        gain = _float_value(raw, "depth-scale", path) * factor
        if "depth-origin" in raw:
            origin = _float_value(raw, "depth-origin", path) * factor
    elif "ev-per-chan" in raw:  # Lispix, eV
        gain = _float_value(raw, "ev-per-chan", path) * 1e-3
    if gain is None or gain <= 0.0:
        return None
    return (float(gain), float(origin))


def _edit_distance(a: str, b: str) -> int:
    """Edit distance: insert, delete, substitute or swap two neighbours, each 1 (``depht``
    is 1 from ``depth``)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def likely_key(key: str) -> str | None:
    """The key we read that ``key`` is most likely a misspelling of, or None.

    Compared without ``-`` and ``_`` (``recordby`` is ``record-by``), at most
    :data:`_NEAR_MISS` edits apart and not longer than half the key.
    """
    bare = key.replace("-", "").replace("_", "")
    best, best_d = None, _NEAR_MISS + 1
    for known in sorted(_INTERPRETED):
        d = _edit_distance(bare, known.replace("-", ""))
        if d < best_d and d <= max(0, len(bare) // 2 - 1):
            best, best_d = known, d
    return best if best_d <= _NEAR_MISS else None


def _check_keys(raw: Mapping[str, str], path: Path, lenient: bool
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Unknown keys of the header, and the warnings for near-misses read leniently.

    Raises
    ------
    ScanFormatError
        A key that looks like a misspelt key we read (``byte-ordr``): ignoring it would
        silently use the default (a big-endian file read as little-endian).
    """
    unknown = tuple(k for k in raw if k not in _INTERPRETED and k not in _KNOWN_OTHER)
    warnings = []
    for key in unknown:
        guess = likely_key(key)
        if guess is None or guess in raw:
            continue
        what = (f"header key {_key_display(key)} is not a known key; did you mean "
                f"{_key_display(guess)}?")
        if not lenient:
            raise ScanFormatError(f"{what} (fix the header, or convert with --lenient "
                                  f"(lenient=True) to ignore it and use the default)", path)
        warnings.append(f"{what} Ignored: {_key_display(guess)} takes its default")
    return unknown, tuple(warnings)


def _build_header(raw: dict[str, str], path: Path, lenient: bool = False) -> RippleHeader:
    unknown, warnings = _check_keys(raw, path, lenient)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ScanFormatError(
            f"the .rpl header lacks required key(s) {', '.join(map(_key_display, missing))}",
            path,
        )
    width = _int_value(raw, "width", path, minimum=1)
    height = _int_value(raw, "height", path, minimum=1)
    depth = _int_value(raw, "depth", path, minimum=1)
    offset = _int_value(raw, "offset", path, minimum=0) if "offset" in raw else 0
    data_length = _int_value(raw, "data-length", path, minimum=1)
    if data_length not in _DATA_LENGTHS:
        raise ScanFormatError(
            f"header key 'data-length' has unsupported value {_value_display(raw['data-length'])} "
            "(expected 1, 2, 4 or 8)",
            path,
        )
    data_type = _choice_value(raw, "data-type", _DATA_TYPES, path, "unsigned")
    if data_type == "float" and data_length not in (4, 8):
        raise ScanFormatError(
            f"header key 'data-length' has value {_value_display(raw['data-length'])}, "
            "unsupported for data-type 'float' (expected 4 or 8)",
            path,
        )
    byte_order = _choice_value(raw, "byte-order", _BYTE_ORDERS, path, "dont-care")
    record_by = _choice_value(raw, "record-by", _RECORD_BYS, path, "vector")
    nbytes = width * height * depth * data_length
    if nbytes > MAX_DATA_BYTES:
        raise ScanFormatError(
            f"the .rpl header asks for {width} x {height} x {depth} values of {data_length} "
            f"bytes = {nbytes} bytes, which is absurdly large (more than 2**50 bytes)",
            path,
        )
    return RippleHeader(
        width=width,
        height=height,
        depth=depth,
        offset=offset,
        data_length=data_length,
        data_type=data_type,
        byte_order=byte_order,
        record_by=record_by,
        calibration=_calibration(raw, path),
        raw=dict(raw),
        unknown_keys=unknown,
        warnings=warnings,
    )


def read_rpl(path: str | os.PathLike, lenient: bool = False) -> RippleHeader:
    """Read and validate a ``.rpl`` ripple header.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.rpl`` file.
    lenient : bool
        Read a header with a misspelt-looking key (``byte-ordr``) anyway, ignoring that key
        (its ``warnings`` say so); by default that is an error naming the likely key.

    Returns
    -------
    RippleHeader
        The validated header (the ``.raw`` file is not looked at).

    Raises
    ------
    MissingFileError
        The file does not exist.
    ScanFormatError
        The file is not a text header, is larger than 1 MB, lacks a required key, or has
        a non-numeric, negative, zero, unsupported or absurdly large value.
    """
    path = Path(path)
    data = _read_small(path)
    return _build_header(_parse_lines(_decode_header(data, path), path), path, lenient)


def _read_small(path: Path) -> bytes:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
            if path.is_dir():
                raise ScanFormatError("is a directory, not a .rpl header file", path)
            raise ScanFormatError("is not a regular file, so not a .rpl header file", path)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_HEADER_BYTES:
                raise ScanFormatError(
                    f"the .rpl header is {size} bytes, too large for a header "
                    f"(at most {MAX_HEADER_BYTES} bytes)",
                    path,
                )
            data = f.read(min(size, MAX_HEADER_BYTES) + 1)  # +1: sees a growing file
    except FileNotFoundError:
        raise MissingFileError("the .rpl header file does not exist", path) from None
    except IsADirectoryError:
        raise ScanFormatError("is a directory, not a .rpl header file", path) from None
    except OSError as exc:
        raise ScanFormatError(f"cannot read the .rpl header: {exc.strerror or exc}", path) from None
    if len(data) > MAX_HEADER_BYTES:
        raise ScanFormatError(
            f"the .rpl header is too large for a header (at most {MAX_HEADER_BYTES} bytes)", path
        )
    return data


# --------------------------------------------------------------------------- reading


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


# --------------------------------------------------------------------------- writing

_MIXED_CASE = {
    "width": "Width",
    "height": "HEIGHT",
    "depth": "Depth",
    "offset": "Offset",
    "data-length": "data-Length",
    "data-type": "Data-Type",
    "byte-order": "Byte-Order",
    "record-by": "Record-By",
    "depthscaleorigin": "DepthScaleOrigin",
    "depthscaleincrement": "DepthScaleIncrement",
    "depth-scale": "Depth-Scale",
    "depth-origin": "Depth-Origin",
    "depth-units": "Depth-Units",
    "ev-per-chan": "eV-per-chan",
}


def _out_dtype(dtype: Any, byte_order: str, what: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"{what}: {dtype!r} is not a numpy dtype") from None
    if (
        dt.kind not in _KIND_NAME
        or dt.itemsize not in _DATA_LENGTHS
        or (dt.kind == "f" and dt.itemsize not in (4, 8))
    ):
        raise ParameterError(
            f"{what}: dtype {dt} cannot be stored in a ripple file "
            "(unsigned/signed integers of 1, 2, 4, 8 bytes or float32/float64)"
        )
    if dt.itemsize == 1:
        return dt.newbyteorder("|")
    return dt.newbyteorder(">" if byte_order == "big-endian" else "<")


def _calibration_lines(calibration: tuple[float, float] | None, style: str | None) -> list[tuple[str, str]]:
    if calibration is None or style is None:
        return []
    try:
        gain, origin = (float(calibration[0]), float(calibration[1]))
    except (TypeError, ValueError, IndexError):
        raise ParameterError(f"calibration must be (gain_keV, offset_keV), got {calibration!r}") from None
    if not (math.isfinite(gain) and math.isfinite(origin) and gain > 0):
        raise ParameterError(f"calibration {calibration!r}: gain must be > 0 and both finite")
    if style == "bruker":
        return [("depthscaleorigin", repr(origin)), ("depthscaleincrement", repr(gain))]
    if style == "rosettasciio":
        return [
            ("depth-origin", repr(origin)),
            ("depth-scale", repr(gain)),
            ("depth-units", "keV"),
            ("ev-per-chan", str(int(round(gain * 1000)))),
        ]
    if style == "ev-per-chan":
        if origin != 0.0:
            raise ParameterError(f"calibration_style 'ev-per-chan' cannot store the offset {origin} keV")
        return [("ev-per-chan", repr(gain * 1000.0))]
    raise ParameterError(
        f"calibration_style must be 'bruker', 'rosettasciio', 'ev-per-chan' or None, got {style!r}"
    )


def _header_text(
    shape: tuple[int, int, int],
    dtype: np.dtype,
    *,
    record_by: str,
    byte_order: str,
    offset: int,
    calibration_lines: list[tuple[str, str]],
    key_case: str,
    first_key_value_line: bool,
) -> str:
    h, w, c = shape
    items = [
        ("width", str(w)),
        ("height", str(h)),
        ("depth", str(c)),
        ("offset", str(offset)),
        ("data-length", str(dtype.itemsize)),
        ("data-type", _KIND_NAME[dtype.kind]),
        ("byte-order", byte_order),
        ("record-by", record_by),
        *calibration_lines,
    ]
    lines = ["key\tvalue"] if first_key_value_line else []
    lines.append(";ripple header written by maxrf")
    for key, value in items:
        lines.append(f"{_MIXED_CASE.get(key, key) if key_case == 'mixed' else key}\t{value}")
    return "\n".join(lines) + "\n"


def _rpl_and_raw_paths(rpl_path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(rpl_path)
    if p.suffix.lower() != ".rpl":
        p = p.with_name(p.name + ".rpl")
    stem = p.name[: -len(p.suffix)]
    raw = p.with_name(stem + (".RAW" if p.suffix.isupper() else ".raw"))
    return p, raw


def _check_output(paths: tuple[Path, ...], overwrite: bool) -> None:
    folder = paths[0].parent
    if not folder.is_dir():
        raise OutputLocationError("the output folder does not exist", folder)
    if not os.access(folder, os.W_OK):
        raise OutputLocationError("the output folder is not writable", folder)
    if not overwrite:
        for p in paths:
            if p.exists():
                raise OutputExistsError("already exists (pass overwrite=True to replace it)", p)


def _tmp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _os_error(exc: OSError, path: Path) -> MaxrfError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError("the disk is full; nothing was written", path)
    return OutputLocationError(f"cannot write: {exc.strerror or exc}", path)


def _unlink(*paths: Path | None) -> None:
    for p in paths:
        if p is not None:
            try:
                os.unlink(p)
            except OSError:
                pass


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def write_ripple(
    rpl_path: str | os.PathLike,
    cube: np.ndarray,
    *,
    record_by: str = "vector",
    byte_order: str = "little-endian",
    offset: int = 0,
    calibration: tuple[float, float] | None = None,
    calibration_style: str | None = "bruker",
    key_case: str = "lower",
    first_key_value_line: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a ``.rpl`` / ``.raw`` pair from an in-memory cube (for tests and synth).

    Parameters
    ----------
    rpl_path : str or os.PathLike
        The header to write; ``.rpl`` is appended when the name has another extension.
        The data goes next to it, same stem, extension ``.raw`` (``.RAW`` for ``.RPL``).
    cube : numpy.ndarray
        ``(height, width, channels)``, stored with its own dtype (unsigned or signed
        integers of 1, 2, 4, 8 bytes, float32 or float64).
    record_by : {'vector', 'image', 'dont-care'}
        Raw layout; ``'dont-care'`` writes vector order.
    byte_order : {'little-endian', 'big-endian', 'dont-care'}
        Byte order of the values; ``'dont-care'`` writes little-endian.
    offset : int
        Bytes of zero padding written before the data (and declared in the header).
    calibration : tuple of float, optional
        ``(gain_keV, offset_keV)`` written as header keys.
    calibration_style : {'bruker', 'rosettasciio', 'ev-per-chan', None}
        Which keys carry the calibration: Bruker M6 ``depthscaleincrement`` /
        ``depthscaleorigin`` (keV); rosettasciio ``depth-scale`` / ``depth-origin`` /
        ``depth-units keV`` plus ``ev-per-chan`` (rounded eV); Lispix ``ev-per-chan``
        (eV, offset must be 0). ``None`` writes no calibration.
    key_case : {'lower', 'mixed'}
        ``'mixed'`` writes keys such as ``data-Length`` and ``Width``, as some exporters do.
    first_key_value_line : bool
        Write the literal ``key<TAB>value`` first line that Bruker and rosettasciio write.
    overwrite : bool
        Replace an existing pair; otherwise :class:`~maxrf.errors.OutputExistsError`.

    Returns
    -------
    pathlib.Path
        The ``.rpl`` path written.

    Raises
    ------
    ParameterError
        Bad cube or option. Nothing is written.
    OutputExistsError, OutputLocationError, DiskFullError
        The output cannot be written; nothing is left behind.
    """
    _check_choice("record_by", record_by, _RECORD_BYS)
    _check_choice("byte_order", byte_order, _BYTE_ORDERS)
    _check_choice("key_case", key_case, ("lower", "mixed"))
    if not isinstance(cube, np.ndarray) or cube.ndim != 3 or 0 in cube.shape:
        raise ParameterError(
            f"cube must be a non-empty (height, width, channels) numpy array, got "
            f"{getattr(cube, 'shape', type(cube).__name__)}"
        )
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ParameterError(f"offset must be a whole number of bytes >= 0, got {offset!r}")
    offset = int(offset)
    dtype = _out_dtype(cube.dtype, byte_order, "cube")
    cal_lines = _calibration_lines(calibration, calibration_style)
    rpl, raw = _rpl_and_raw_paths(rpl_path)
    _check_output((rpl, raw), overwrite)
    text = _header_text(
        cube.shape,
        dtype,
        record_by=record_by,
        byte_order=byte_order,
        offset=offset,
        calibration_lines=cal_lines,
        key_case=key_case,
        first_key_value_line=first_key_value_line,
    )
    tmp_raw, tmp_rpl = _tmp_path(raw), _tmp_path(rpl)
    placed: Path | None = None
    try:
        try:
            with open(tmp_raw, "wb") as f:
                if offset:
                    f.write(bytes(offset))
                if record_by == "image":
                    for ch in range(cube.shape[2]):
                        f.write(np.ascontiguousarray(cube[:, :, ch], dtype=dtype).tobytes())
                else:
                    for row in range(cube.shape[0]):
                        f.write(np.ascontiguousarray(cube[row], dtype=dtype).tobytes())
            with open(tmp_rpl, "w", encoding="ascii", newline="\n") as f:
                f.write(text)
            os.replace(tmp_raw, raw)
            placed = raw
            os.replace(tmp_rpl, rpl)
        except OSError as exc:
            raise _os_error(exc, rpl) from exc
    except BaseException:
        _unlink(tmp_raw, tmp_rpl, placed)
        raise
    return rpl


class RippleWriter:
    """Streaming writer of a vector-ordered, little-endian ripple pair (used by synth).

    Rows are written in blocks, in any order, so the whole cube never sits in memory.
    The data goes to a temporary file; on a clean :meth:`close` it is renamed to the
    ``.raw`` and the ``.rpl`` header is written. On an exception inside the ``with``
    block (or :meth:`abort`) both files are removed and nothing is left behind.

    Parameters
    ----------
    rpl_path : str or os.PathLike
        The header to write (``.rpl`` appended when missing); the data goes to the
        ``.raw`` next to it.
    shape : tuple of int
        ``(height, width, channels)``.
    dtype : numpy dtype
        Stored element type (unsigned/signed integers of 1, 2, 4, 8 bytes, float32,
        float64). Blocks are cast to it like ``numpy.ndarray.astype``.
    calibration : tuple of float, optional
        ``(gain_keV, offset_keV)`` for the header.
    calibration_style : {'bruker', 'rosettasciio', 'ev-per-chan', None}
        Keys used for the calibration, as in :func:`write_ripple`.
    overwrite : bool
        Replace an existing pair; otherwise :class:`~maxrf.errors.OutputExistsError`.

    Examples
    --------
    >>> with RippleWriter("scan.rpl", (64, 80, 2048), "uint16") as w:  # doctest: +SKIP
    ...     for r0 in range(0, 64, 8):
    ...         w.write_rows(r0, block)  # (8, 80, 2048)
    """

    def __init__(
        self,
        rpl_path: str | os.PathLike,
        shape: tuple[int, int, int],
        dtype: Any,
        calibration: tuple[float, float] | None = None,
        *,
        calibration_style: str | None = "bruker",
        overwrite: bool = False,
    ) -> None:
        try:
            shape = tuple(int(s) for s in shape)
            ok = len(shape) == 3 and all(s >= 1 for s in shape)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(f"shape must be (height, width, channels) >= 1, got {shape!r}")
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.dtype = _out_dtype(dtype, "little-endian", "RippleWriter")
        if math.prod(self.shape) * self.dtype.itemsize > MAX_DATA_BYTES:
            raise ParameterError(f"shape {shape} is absurdly large (more than 2**50 bytes)")
        self._cal_lines = _calibration_lines(calibration, calibration_style)
        self.rpl_path, self.raw_path = _rpl_and_raw_paths(rpl_path)
        _check_output((self.rpl_path, self.raw_path), overwrite)
        self._tmp_raw = _tmp_path(self.raw_path)
        self._written: list[tuple[int, int]] = []
        self._closed = False
        self._aborted = False
        self._file = None
        try:
            self._file = open(self._tmp_raw, "w+b")  # closed in close() / abort()
            self._file.truncate(math.prod(self.shape) * self.dtype.itemsize)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, self.raw_path) from exc

    @property
    def row_bytes(self) -> int:
        """Bytes per row of pixels."""
        return self.shape[1] * self.shape[2] * self.dtype.itemsize

    def write_rows(self, start_row: int, block: np.ndarray) -> None:
        """Write rows ``start_row : start_row + len(block)``.

        Parameters
        ----------
        start_row : int
            First row of the block.
        block : numpy.ndarray
            ``(r, width, channels)`` values, cast to the writer's dtype.

        Raises
        ------
        ParameterError
            Wrong block shape or rows outside the cube.
        DiskFullError, OutputLocationError
            The write failed (the caller's ``with`` block then removes the files).
        """
        if self._closed or self._file is None:
            raise ParameterError(f"the writer of {self.rpl_path} is already closed")
        block = np.asarray(block)
        h, w, c = self.shape
        if block.ndim != 3 or block.shape[1:] != (w, c):
            raise ParameterError(
                f"block must have shape (rows, {w}, {c}), got {block.shape} ({self.rpl_path})"
            )
        start = int(start_row)
        stop = start + block.shape[0]
        if start < 0 or stop > h:
            raise ParameterError(f"rows {start}:{stop} lie outside the {h} rows of {self.rpl_path}")
        if stop == start:
            return
        data = np.ascontiguousarray(block, dtype=self.dtype)
        try:
            self._file.seek(start * self.row_bytes)
            self._file.write(data.tobytes())
        except OSError as exc:
            raise _os_error(exc, self.raw_path) from exc
        self._written.append((start, stop))

    def _missing_rows(self) -> list[tuple[int, int]]:
        gaps, covered = [], 0
        for start, stop in sorted(self._written):
            if start > covered:
                gaps.append((covered, start))
            covered = max(covered, stop)
        if covered < self.shape[0]:
            gaps.append((covered, self.shape[0]))
        return gaps

    def close(self) -> Path:
        """Finish: check every row was written, move the data in place, write the header.

        Returns
        -------
        pathlib.Path
            The ``.rpl`` path.
        """
        if self._aborted:
            raise ParameterError(f"the writer of {self.rpl_path} was aborted; nothing was saved")
        if self._closed:
            return self.rpl_path
        gaps = self._missing_rows()
        if gaps:
            self.abort()
            shown = ", ".join(f"{a}:{b}" for a, b in gaps[:5])
            raise ParameterError(f"rows {shown} were never written; nothing was saved ({self.rpl_path})")
        text = _header_text(
            self.shape,
            self.dtype,
            record_by="vector",
            byte_order="little-endian",
            offset=0,
            calibration_lines=self._cal_lines,
            key_case="lower",
            first_key_value_line=False,
        )
        tmp_rpl = _tmp_path(self.rpl_path)
        placed: Path | None = None
        try:
            try:
                self._file.close()
                with open(tmp_rpl, "w", encoding="ascii", newline="\n") as f:
                    f.write(text)
                os.replace(self._tmp_raw, self.raw_path)
                placed = self.raw_path
                os.replace(tmp_rpl, self.rpl_path)
            except OSError as exc:
                raise _os_error(exc, self.rpl_path) from exc
        except BaseException:
            _unlink(tmp_rpl, placed)
            self.abort()
            raise
        self._closed = True
        return self.rpl_path

    def abort(self) -> None:
        """Stop writing and remove every file this writer created."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        _unlink(self._tmp_raw)
        self._closed = True
        self._aborted = True

    def __enter__(self) -> RippleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False

    def __del__(self) -> None:  # a forgotten writer leaves no temporary file behind
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:
                pass
