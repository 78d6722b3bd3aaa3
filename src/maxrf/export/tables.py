"""Spectra as CSV: one row per channel, for spreadsheets, PyMca and plotting tools.

Columns: ``channel``, ``energy_keV`` (empty when the scan is not calibrated),
``mean_counts`` (mean spectrum over all pixels, counts per pixel), ``max_counts``
(per channel maximum over all pixels), then one column per requested pixel
(``pixel_<row>_<col>``, counts). Comma separated, ``.`` decimal point, a header row,
no comment lines, so ``pandas.read_csv`` and ``numpy.genfromtxt(names=True)`` read it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import ParameterError
from maxrf.export.stored import atomic_output, export_path
from maxrf.store import open_datastack

__all__ = ["export_csv"]


def export_csv(source: Any, out: str | os.PathLike | None = None, *,
               pixels: Sequence[tuple[int, int]] = (), overwrite: bool = False) -> Path:
    """Write the mean and max spectra (and some pixels' spectra) as a CSV table.

    Parameters
    ----------
    source, out, overwrite
        The datastack, the file (default ``NAME_spectra.csv`` beside it) and whether to
        replace an existing one (see :mod:`maxrf.export.stored`).
    pixels : sequence of (row, col)
        Pixels whose spectra are added as columns (each read alone).

    Returns
    -------
    pathlib.Path
        The CSV file written.

    Raises
    ------
    ParameterError
        A pixel lies outside the image.
    """
    ds = open_datastack(source)
    h, w, c = ds.shape
    for r, col in pixels:
        if not (0 <= r < h and 0 <= col < w):
            raise ParameterError(f"pixel ({r}, {col}) lies outside the {h} x {w} image of {ds.path}")
    out = export_path(ds, out, ds.path.stem + "_spectra.csv")
    energies = np.asarray(ds.energies) if ds.calibration is not None else None
    columns = [np.asarray(ds.sum_spectrum), np.asarray(ds.max_spectrum)]
    names = ["channel", "energy_keV", "mean_counts", "max_counts"]
    cube = ds.cube
    for r, col in pixels:
        columns.append(np.asarray(cube[r, col, :].compute()))
        names.append(f"pixel_{r}_{col}")
    with atomic_output(out, overwrite) as tmp, open(tmp, "w", newline="", encoding="ascii") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i in range(c):
            energy = "" if energies is None else f"{energies[i]:.6f}"
            writer.writerow([i, energy, *(_number(col[i]) for col in columns)])
    return out


def _number(x: Any) -> str:
    return repr(float(x)) if isinstance(x, (float, np.floating)) else str(int(x))
