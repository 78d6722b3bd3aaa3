"""The ``.rpl`` header of a ripple scan: its keys, their checks, :class:`RippleHeader`."""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maxrf.errors import (
    MissingFileError,
    ScanFormatError,
)

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
