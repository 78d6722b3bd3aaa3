"""Control points files: CSV with columns ``xrf_col,xrf_row,photo_x,photo_y``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from maxrf.errors import MissingFileError, ParameterError

__all__ = ["COLUMNS", "read_points"]

COLUMNS = ("xrf_col", "xrf_row", "photo_x", "photo_y")


def read_points(path: str | os.PathLike) -> np.ndarray:
    """Read control point pairs (scan pixel centres and photo pixel centres at integers).

    Returns
    -------
    numpy.ndarray
        ``(N, 4)`` float64 ``xrf_col, xrf_row, photo_x, photo_y``.

    Raises
    ------
    MissingFileError
        If the file does not exist.
    ParameterError
        Missing columns, a non-number, or fewer than 4 pairs (the message names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError("control points file not found", p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{p}: cannot read the control points ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise ParameterError(f"{p}: missing column(s) {', '.join(missing)}; need {','.join(COLUMNS)}")
    rows = []
    for n, row in enumerate(reader, start=2):
        row = {k.strip().lower(): v for k, v in row.items() if k is not None}
        if all((row.get(c) or "").strip() == "" for c in COLUMNS):
            continue
        try:
            rows.append([float(row[c]) for c in COLUMNS])
        except (TypeError, ValueError):
            raise ParameterError(f"{p}: line {n}: not a number in {[row.get(c) for c in COLUMNS]}") from None
    if len(rows) < 4:
        raise ParameterError(f"{p}: {len(rows)} point pair(s); at least 4 are needed")
    return np.asarray(rows, dtype=float)
