"""segment_map: classify every pixel of an element map (see :mod:`maxrf.segmentation`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from maxrf.errors import ParameterError
from maxrf.segmentation.features import _Params, _particles, _strokes, _tiled
from maxrf.segmentation.noise import (
    _as_map,
    _paper_level,
    _positive,
    _robust_sigma,
    _smoothing_factor,
    noise_model,
)
from maxrf.segmentation.result import CLASS_NAMES, EXTENDED, PARTICLE, Segmentation

#: a particle on a stroke must stand this many times further out than one on the paper
#: (chosen on the development seeds 0-9 of make_drawing, see the benchmark)
STROKE_STRICTNESS = 1.4


def segment_map(
    element_map: Any, *, other_maps: Mapping[str, Any] | None = None, element: str | None = None,
    max_radius: float = 3.0, max_width: float = 4.0, line_length: int | None = None,
    n_angles: int = 16, smooth: float = 0.7, significance: float = 3.5,
    matched_significance: float = 6.0, stroke_significance: float = 4.0, along: int = 3,
    noise: tuple[float, float] | None = None,
) -> Segmentation:
    """Classify every pixel of an element map as background, stroke or particle.

    Parameters
    ----------
    element_map : array_like, shape (H, W)
        Element or peak map (counts; NaN marks pixels without data, never a feature).
    other_maps : mapping of str to array_like (H, W), optional
        Maps of other elements on the same grid; each adds a table column with its mean over
        every particle (e.g. Mn, Cu, Zn to tell ink, iron and brass apart).
    element : str, optional
        Name of the segmented element, kept in the result.
    max_radius : float
        Largest particle radius, pixels (> 0). Default 3.
    max_width : float
        Largest stroke width, pixels (> 0): sets the half-maximum window. Default 4.
    line_length : int, optional
        Length (pixels, odd) of the line segments of the openings; longer than any particle.
        Default ``4 * max_radius + 3`` rounded up to odd (15).
    n_angles : int
        Line orientations over 180 degrees (>= 4). Default 16 (11.25 degrees apart).
    smooth : float
        Gaussian smoothing (pixels) before the openings and the particle test. Default 0.7.
    significance : float
        Seed threshold of a particle, in noise units of the smoothed residual; regions grow
        down to half of it; on a stroke it is ``STROKE_STRICTNESS`` (1.4) times higher.
        Default 3.5.
    matched_significance : float
        A particle's summed excess over its expected level must exceed this many standard
        deviations of that sum. Default 6.
    along : int
        Pixels averaged along each line before its opening (odd, >= 1). Default 3.
    stroke_significance : float
        A stroke pixel's mean along the stroke must exceed the paper by this many standard
        deviations of that mean. Default 4.
    noise : (float, float), optional
        ``(a, b)`` of the noise model ``var = a + b * level``; default fitted on the map.

    Returns
    -------
    Segmentation

    Raises
    ------
    ParameterError
        A map that is not 2-D, too small, all NaN or with infinite values; a bad option; an
        other map with another shape.
    """
    m = _as_map(element_map)
    max_radius, max_width, smooth, line_length = _check_options(
        max_radius, max_width, smooth, line_length, n_angles, along,
        (significance, matched_significance, stroke_significance))
    others = _check_others(other_maps, m.shape)

    a, b, ninfo, nsource = _noise_of(m, noise)
    block = max(24, 2 * line_length)
    paper = _paper_level(m, block)
    p = _Params(max_radius, max_width, line_length, max(3, int(line_length // 2) | 1), int(n_angles),
                smooth, float(significance), float(matched_significance),
                float(stroke_significance), int(along), a, b)
    found = _find_features(m, paper, p)
    table = _table(found.rows, found.labels, found.strokes, others)
    evidence = _evidence(m, paper, p, nsource, ninfo, found)
    verdict, warnings = _verdict(m, evidence, p)
    return Segmentation(found.classes, found.labels, table, _thresholds(p, block), evidence, verdict,
                        warnings, element)


@dataclass
class _Features:
    """What the openings and the particle test found in a map."""

    classes: np.ndarray
    labels: np.ndarray
    strokes: np.ndarray
    rows: list[dict[str, Any]]
    rejected: dict[str, int]
    stroke_info: dict[str, Any]
    z_centre: Any
    z_scale: Any


def _find_features(m: np.ndarray, paper: np.ndarray, p: _Params) -> _Features:
    """Strokes (line openings) and particles (seeded regions of significant excess)."""
    f_s = _smoothing_factor(p.smooth)
    fill = np.where(np.isnan(m), paper, m)
    expected, z, mstar = _tiled(fill, paper, p, f_s)
    z[np.isnan(m)] = np.nan
    strokes, sinfo = _strokes(mstar, paper, p)
    del mstar
    strokes[np.isnan(m)] = False
    # the openings sit a little above or below the true level (noise, the 3 x 3 maximum,
    # a line that does not quite follow a stroke): the residual's own centre and spread,
    # on the strokes and off them, re-standardise it
    z_centre, z_scale = _standardise(z, strokes)
    # the same offset, in map units, unbiases the expected level for the summed excess
    expected += (z_centre[0] * f_s) * p.sigma(expected)
    labels, rows, rejected = _particles(fill, expected, z, p, f_s)
    classes = np.zeros(m.shape, dtype=np.uint8)
    classes[strokes] = EXTENDED
    classes[labels > 0] = PARTICLE
    return _Features(classes, labels, strokes, rows, rejected, sinfo, z_centre, z_scale)


def _evidence(m: np.ndarray, paper: np.ndarray, p: _Params, nsource: str, ninfo: dict[str, Any],
              found: _Features) -> dict[str, Any]:
    """The noise model, the candidates and why some were rejected, the strokes, the classes."""
    level = float(np.nanmedian(paper))
    return {
        "noise_model": {"a": p.a, "b": p.b, "source": nsource, **ninfo,
                        "paper_level": level,
                        "paper_noise": float(p.sigma(np.array(level))),
                        "residual_centre": found.z_centre, "residual_spread": found.z_scale,
                        "seed_noise_level": _seed_noise_level(m)},
        "candidates": len(found.rows) + sum(found.rejected.values()),
        "rejected": found.rejected,
        "strokes": found.stroke_info,
        "class_fractions": {CLASS_NAMES[k]: float(np.mean(found.classes == k)) for k in CLASS_NAMES},
    }


def _thresholds(p: _Params, block: int) -> dict[str, Any]:
    """Every threshold of a segmentation, its units and why it has its value."""
    return {
        "particle_seed": {"value": p.significance, "units": "noise of the smoothed residual",
                          "why": "a local maximum this far above the expected level (paper or "
                                 "stroke under it) is rarely noise; regions grow to half of it"},
        "particle_matched": {"value": p.matched_significance, "units": "noise of the summed excess",
                             "why": "the whole particle's excess over its expected level"},
        "particle_max_area": {"value": math.pi * (p.max_radius + 1.5) ** 2, "units": "pixels",
                              "why": "a disc of max_radius + 1.5 px: larger is not compact"},
        "line_length": {"value": p.line_length, "units": "pixels",
                        "why": "longer than a particle (> 2 max_radius + 1): strokes survive "
                               "the line openings, particles do not"},
        "stroke": {"value": p.stroke_significance, "units": "noise of the mean along the stroke",
                   "why": f"mean of {p.stroke_line} px along the best line direction above the "
                          "paper; the edge at 0.4 of the local ridge maximum (about half the "
                          "stroke's height: its width)"},
        "stroke_min_length": {"value": 2.0 * p.line_length, "units": "pixels",
                              "why": "shorter significant regions are not strokes"},
        "paper_block": {"value": block, "units": "pixels",
                        "why": "median of blocks: the ground level; extended areas larger "
                               "than a block are read as ground"},
    }


def _seed_noise_level(m: np.ndarray) -> float | None:
    """The seed's ``get_noise_level`` (from the negative values of a peak map), a cross-check
    of the noise model on maps with counts above a continuum; None without negative values."""
    from maxrf.maps import get_noise_level

    finite = m[np.isfinite(m)]
    if np.count_nonzero(finite < 0) < 100:
        return None
    return float(get_noise_level(finite)[0])


def _check_options(max_radius: Any, max_width: Any, smooth: Any, line_length: Any,
                   n_angles: Any, along: Any, significances: tuple[Any, Any, Any]
                   ) -> tuple[float, float, float, int]:
    """Validated ``max_radius, max_width, smooth, line_length``; raise on any bad option."""
    max_radius = _positive("max_radius", max_radius)
    max_width = _positive("max_width", max_width)
    smooth = _positive("smooth", smooth)
    for name, v in zip(("significance", "matched_significance", "stroke_significance"),
                       significances):
        _positive(name, v)
    for name, v, lo in (("n_angles", n_angles, 4), ("along", along, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ParameterError(f"{name} must be an integer >= {lo}, got {v!r}")
    if line_length is None:
        line_length = int(math.ceil(4 * max_radius + 3))
    if isinstance(line_length, bool) or not isinstance(line_length, (int, np.integer)):
        raise ParameterError(f"line_length must be an integer, got {line_length!r}")
    line_length = int(line_length) | 1
    if line_length <= 2 * max_radius + 1:
        raise ParameterError(
            f"line_length={line_length} must exceed a particle's diameter (2 * max_radius + 1)")
    if along >= line_length:
        raise ParameterError(f"along={along} must be shorter than line_length={line_length}")
    return max_radius, max_width, smooth, line_length


def _noise_of(m: np.ndarray, noise: tuple[float, float] | None
              ) -> tuple[float, float, dict[str, Any], str]:
    if noise is None:
        a, b, info = noise_model(m)
        return a, b, info, "fitted on the map (pixel differences in level bins)"
    try:
        a, b = (float(v) for v in noise)
    except (TypeError, ValueError):
        raise ParameterError(f"noise must be a pair (a, b) of numbers, got {noise!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0 and a + b > 0):
        raise ParameterError(f"noise must be (a, b) with a, b >= 0, not both 0, got {noise}")
    return a, b, {"levels": [], "sigmas": [], "fit_residual": 0.0}, "given"


def _standardise(z: np.ndarray, strokes: np.ndarray) -> tuple[list[float], list[float]]:
    """Standardise ``z`` in place by its robust centre and spread off and on the strokes."""
    c0, s0 = _null_of(z)
    z -= c0
    z /= s0
    # on a stroke the line openings are least exact (a line that does not quite follow
    # it): a particle there must stand STROKE_STRICTNESS times further out
    z[strokes] /= STROKE_STRICTNESS
    return [c0], [s0]


def _null_of(z: np.ndarray, max_samples: int = 500_000) -> tuple[float, float]:
    """Robust centre (median) and spread (clipped standard deviation) of a z-score map."""
    sample = z.ravel()[:: max(1, z.size // max_samples)]
    sample = sample[np.isfinite(sample)]
    if sample.size < 10:
        return 0.0, 1.0
    centre = float(np.median(sample))
    scale = _robust_sigma(sample - centre)
    return centre, (scale if scale > 0.2 else 1.0)


def _check_others(other_maps: Mapping[str, Any] | None, shape: tuple[int, ...]
                  ) -> Mapping[str, Any]:
    if other_maps is None:
        return {}
    if not isinstance(other_maps, Mapping):
        raise ParameterError("other_maps must be a mapping of element name to 2-D map")
    return other_maps


def _table(rows: list[dict[str, float]], labels: np.ndarray, strokes: np.ndarray,
           others: Mapping[str, Any]) -> dict[str, np.ndarray]:
    n = len(rows)
    table: dict[str, np.ndarray] = {"label": np.arange(1, n + 1, dtype=np.int64)}
    for key, dtype in (("row", float), ("col", float), ("row_weighted", float),
                       ("col_weighted", float), ("area", np.int64), ("peak", float),
                       ("excess", float), ("contrast", float), ("significance", float)):
        table[key] = np.array([r[key] for r in rows], dtype=dtype)
    flat = labels.reshape(-1)
    fg = np.flatnonzero(flat)
    lab = flat[fg]
    # on a stroke: a particle whose dilated outline touches the stroke mask
    near = ndi.grey_dilation(labels, size=(5, 5))
    on = np.zeros(n + 1, dtype=bool)
    on[np.unique(near[strokes])] = True
    table["on_stroke"] = on[1:]
    for name, emap in others.items():
        key = str(name)
        if key in table:
            raise ParameterError(f"other map name {key!r} clashes with a table column")
        arr = np.asarray(emap, dtype=np.float64)
        if arr.shape != labels.shape:
            raise ParameterError(
                f"other_maps[{key!r}] has shape {arr.shape}, the segmented map has {labels.shape}")
        vals = arr.reshape(-1)[fg]
        ok = np.isfinite(vals)
        s = np.bincount(lab[ok], weights=vals[ok], minlength=n + 1)[1:]
        c = np.bincount(lab[ok], minlength=n + 1)[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            table[key] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    return table


def _verdict(m: np.ndarray, evidence: dict[str, Any], p: _Params) -> tuple[str, list[str]]:
    warnings = []
    nm = evidence["noise_model"]
    if nm.get("fit_residual", 0.0) > 0.25:
        warnings.append(f"the noise model fits poorly (median relative residual "
                        f"{nm['fit_residual']:.2f}): thresholds in noise units may be off")
    if nm["paper_noise"] <= 0 or not math.isfinite(nm["paper_noise"]):
        warnings.append("no noise seen on the paper: thresholds are meaningless")
    frac = evidence["class_fractions"]
    if frac["extended"] > 0.5:
        warnings.append(f"{100 * frac['extended']:.0f}% of the map is extended: the ground level "
                        "(block medians) may be wrong")
    nan = float(np.mean(np.isnan(m)))
    if nan > 0.2:
        warnings.append(f"{100 * nan:.0f}% of the map has no data")
    return ("doubtful" if warnings else "ok"), warnings

