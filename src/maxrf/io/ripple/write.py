"""Writing ripple pairs: :func:`write_ripple` from a cube, :class:`RippleWriter` row by row."""

from __future__ import annotations

import errno
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import (
    DiskFullError,
    MaxrfError,
    OutputExistsError,
    OutputLocationError,
    ParameterError,
)
from maxrf.io.ripple.header import (
    _BYTE_ORDERS,
    _DATA_LENGTHS,
    _KIND_NAME,
    _RECORD_BYS,
    MAX_DATA_BYTES,
)

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


def _check_cube_and_offset(cube: np.ndarray, offset: int) -> int:
    """The offset as an int, once the cube is a non-empty 3-D array and the offset >= 0."""
    if not isinstance(cube, np.ndarray) or cube.ndim != 3 or 0 in cube.shape:
        raise ParameterError(
            f"cube must be a non-empty (height, width, channels) numpy array, got "
            f"{getattr(cube, 'shape', type(cube).__name__)}"
        )
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ParameterError(f"offset must be a whole number of bytes >= 0, got {offset!r}")
    return int(offset)


def _write_pair(cube: np.ndarray, dtype: np.dtype, record_by: str, offset: int, text: str,
                rpl: Path, raw: Path) -> None:
    """Write the data and the header to temporary files, then rename both into place;
    on any failure remove whatever was written."""
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
    offset = _check_cube_and_offset(cube, offset)
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
    _write_pair(cube, dtype, record_by, offset, text, rpl, raw)
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
