"""Speckle measurements: the noise level of a map, speckles above it, the table and its CSV."""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import OutputExistsError, OutputLocationError, ParameterError
from maxrf.speckles.atlas import SpeckleAtlas
from maxrf.speckles.heights import _as_map
from maxrf.types import ArrayLike

# Columns every speckle table has, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "label",
    "row",
    "col",
    "row_weighted",
    "col_weighted",
    "area",
    "equivalent_diameter",
    "peak",
)


def _noise_level(peak_map: Any) -> float:
    """Robust estimate of the pixel noise (standard deviation, map units) of a map.

    The median absolute deviation (MAD) of the differences between horizontally and
    vertically adjacent pixels, scaled to a Gaussian standard deviation:
    ``1.4826 * MAD(d) / sqrt(2)``. Differencing removes a smooth background (paper,
    gradual paint layers), and the median ignores the few differences at speckles and
    region edges. For independent pixel noise (counting noise) this is the per-pixel
    standard deviation. If the MAD is 0 (e.g. integer maps of mostly identical counts) the
    standard deviation of the differences is used instead.
    """
    m = _as_map(peak_map)
    H, W = m.shape
    nh, nv = H * (W - 1), (H - 1) * W
    d = np.empty(nh + nv)  # all differences in one buffer, worked on in place
    np.subtract(m[:, 1:], m[:, :-1], out=d[:nh].reshape(H, W - 1))
    np.subtract(m[1:], m[:-1], out=d[nh:].reshape(H - 1, W))
    finite = np.isfinite(d)
    if not finite.all():
        d = d[finite]
    del finite
    if d.size == 0:
        return 0.0
    n = d.size
    mean = float(d.sum()) / n
    var = max(float(np.dot(d, d)) / n - mean * mean, 0.0)  # for the MAD = 0 fallback
    med = np.median(d, overwrite_input=True)
    np.subtract(d, med, out=d)
    np.abs(d, out=d)
    mad = np.median(d, overwrite_input=True)
    if mad > 0:
        return float(1.482602218505602 * mad / math.sqrt(2.0))
    return float(math.sqrt(var) / math.sqrt(2.0))


def speckles_above_noise(
    atlas: SpeckleAtlas,
    noise_level: float | None = None,
    factor: float = 3.0,
    baseline: float = 0.0,
) -> np.ndarray:
    """Labels of the speckles whose peak stands above the noise.

    A speckle is kept when ``peak - baseline > factor * noise_level``, with ``peak`` the
    maximum of the map over the speckle.

    Parameters
    ----------
    atlas : SpeckleAtlas
        An atlas after :meth:`SpeckleAtlas.measure_speckles`.
    noise_level : float, optional
        Pixel noise (standard deviation, map units). Default: a robust estimate from the
        map itself (MAD of neighbour differences, see :func:`_noise_level`).
    factor : float, optional
        Threshold in units of the noise level. Default 3. Note that a map of pure
        Gaussian noise has about 0.13 % of its pixels above 3 sigma, so on a large
        map some noise speckles pass ``factor=3``; use 4-5 for a cleaner selection.
    baseline : float, optional
        Map value of the empty background (map units). Default 0, right for peak maps
        (counts above the continuum).

    Returns
    -------
    ndarray of int64
        Speckle labels (1-based, ascending = decreasing area) that pass.
    """
    atlas._require_measured()
    if noise_level is None:
        noise_level = _noise_level(atlas.peak_map)
    for name, val in (("noise_level", noise_level), ("factor", factor), ("baseline", baseline)):
        if isinstance(val, bool) or not isinstance(val, (int, float, np.number)):
            raise ParameterError(f"{name} must be a number, got {val!r}")
        if not np.isfinite(val):
            raise ParameterError(f"{name} must be finite, got {val}")
    if noise_level < 0 or factor < 0:
        raise ParameterError(
            f"noise_level and factor must be >= 0, got noise_level={noise_level}, factor={factor}"
        )
    keep = atlas.peaks - baseline > factor * noise_level
    return atlas.labels[keep]


def speckle_table(
    atlas: SpeckleAtlas,
    element_maps: Mapping[str, ArrayLike] | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Table of speckle measurements, as a dict of equal-length columns.

    Parameters
    ----------
    atlas : SpeckleAtlas
        An atlas after :meth:`SpeckleAtlas.measure_speckles`.
    element_maps : mapping of str to array_like (H, W), optional
        Maps with the atlas's pixel grid (e.g. ``{'Fe': fe_map, 'Pb': pb_map}``); each adds a
        column with the map's mean over every speckle (map units; NaN pixels ignored).
    labels : sequence of int, optional
        Speckle labels (1-based) to include, in the given order, e.g. the output of
        :func:`speckles_above_noise`. Default: all speckles, by label.

    Returns
    -------
    dict of str to ndarray
        Columns ``label`` (int), ``row``, ``col`` (geometric centroid, pixels),
        ``row_weighted``, ``col_weighted`` (centroid weighted by height above the clip
        height, pixels), ``area`` (int, pixels), ``equivalent_diameter`` (pixels),
        ``peak`` (map maximum over the speckle, map units), then one column per element
        map, named by its key. Suitable for ``DataStack.write_layer('speckles', table)``
        and :func:`write_csv`.
    """
    atlas._require_measured()
    n = atlas.n_speckles
    if labels is None:
        lab = atlas.labels
    else:
        lab = np.asarray(labels)
        if lab.ndim != 1 or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
            raise ParameterError("labels must be a 1-D sequence of integer speckle labels")
        lab = lab.astype(np.int64)
        bad = lab[(lab < 1) | (lab > n)]
        if bad.size:
            raise ParameterError(
                f"labels {bad[:5].tolist()} are not speckle labels (valid: 1..{n})"
            )
    idx = lab - 1
    table: dict[str, np.ndarray] = {
        "label": lab.copy(),
        "row": atlas.centroids_rc[idx, 0],
        "col": atlas.centroids_rc[idx, 1],
        "row_weighted": atlas.weighted_centroids_rc[idx, 0],
        "col_weighted": atlas.weighted_centroids_rc[idx, 1],
        "area": atlas.areas[idx],
        "equivalent_diameter": atlas.equivalent_diameters[idx],
        "peak": atlas.peaks[idx],
    }
    if element_maps:
        flat = atlas.relabel_image.reshape(-1)
        fg = np.flatnonzero(flat)  # speckle pixels: the only ones a column needs
        lab_fg = flat[fg]
        for name, emap in element_maps.items():  # one map in memory at a time
            key = str(name)
            if key in table:
                raise ParameterError(
                    f"element map name {key!r} clashes with a standard table column"
                )
            arr = _as_map_allow_inf(emap, f"element_maps[{key!r}]")
            if arr.shape != atlas.shape:
                raise ParameterError(
                    f"element_maps[{key!r}] has shape {arr.shape}, the atlas map has {atlas.shape}"
                )
            vals = arr.reshape(-1)[fg].astype(np.float64)
            del arr
            ok = np.isfinite(vals)
            s = np.bincount(lab_fg[ok], weights=vals[ok], minlength=n + 1)[1:]
            cnt = np.bincount(lab_fg[ok], minlength=n + 1)[1:]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
            table[key] = mean[idx]
    return table


def _as_map_allow_inf(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiub":
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a 2-D numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array, got shape {arr.shape}")
    return arr


def write_csv(
    table: Mapping[str, ArrayLike], path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a speckle table (dict of equal-length columns) as CSV, one row per speckle.

    Parameters
    ----------
    table : mapping of str to 1-D array_like
        E.g. from :func:`speckle_table`; the header is the column names in order.
    path : str or os.PathLike
        Output file.
    overwrite : bool, optional
        Replace an existing file. Default False (raise :class:`OutputExistsError`).

    Returns
    -------
    pathlib.Path
        The written file. Floats are written with 10 significant digits.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputLocationError("the output folder does not exist", path.parent)
    if path.exists() and not overwrite:
        raise OutputExistsError("file exists (pass overwrite=True to replace it)", path)
    names = [str(k) for k in table]
    cols = [np.asarray(v) for v in table.values()]
    lengths = {c.shape[0] if c.ndim else -1 for c in cols}
    if any(c.ndim != 1 for c in cols) or len(lengths) > 1:
        raise ParameterError("table columns must be 1-D arrays of equal length", path)
    n = cols[0].shape[0] if cols else 0

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return format(float(v), ".10g")
        if isinstance(v, np.integer):
            return str(int(v))
        return str(v)

    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for r in range(n):
                writer.writerow([fmt(c[r]) for c in cols])
        os.replace(tmp, path)
    except OSError as exc:  # permission, read-only, full, vanished: one line
        from maxrf.outputs import os_error

        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise os_error(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path
