"""Segment an element map into background, strokes (extended features) and particles.

:func:`segment_map` classifies every pixel of a 2-D element or peak map as

- ``0`` background: the paper or ground, the map's counting noise around a smooth level;
- ``1`` extended: strokes, lines and painted areas, features longer than a particle;
- ``2`` particle: compact bright spots (speckles, grains) standing above whatever lies
  under them, paper or stroke.

Method (all scales in pixels, thresholds in units of the map's counting noise):

1. **Noise model.** The map's variance as a function of its level, ``var = a + b * level``
   (the Poisson envelope: ``a = 0, b = 1`` for raw counts), fitted on robust (median
   absolute deviation) estimates of the pixel-to-pixel differences in bins of the smoothed
   level. Per bin the direction with the smallest spread is used, so pixels on a stroke,
   whose differences along the stroke are pure noise, do not inflate it.
2. **Paper level.** Median of coarse blocks, interpolated: the smooth level of the ground.
3. **Linear openings.** The map, lightly smoothed, is opened (grey erosion then dilation)
   with line segments of ``line_length`` pixels at ``n_angles`` orientations. A stroke
   survives the opening along its own direction; a particle, shorter than the line in every
   direction, does not. The largest opening is the *expected level without particles*:
   paper, or the stroke under a speckle. Where two strokes cross, the best opening at least
   45 degrees away from the first adds the second stroke (ink adds where strokes cross), so
   a crossing is not a particle.
4. **Particles.** The residual (smoothed map minus the expected level) in units of its noise
   is thresholded with hysteresis (seed ``significance``, growth ``significance / 2``);
   each region is kept when its summed excess is significant (``matched_significance``),
   it is compact (not elongated, not larger than a disc of ``max_radius`` + 1.5 px) and
   its peak is a local maximum. Rejected candidates are counted by reason.
5. **Strokes.** Pixels whose mean along the best line direction stands
   ``stroke_significance`` noise units above the paper and at least half way up the local
   ridge height (half maximum: the mask follows the stroke's width), in connected regions
   longer than a particle. Particle pixels are class 2 even on a stroke.

The local steps run tile by tile (with a halo), so memory stays a few bytes per pixel
whatever the map size. The computation never plots, prints or prompts.

Units: map values in the map's units (counts for element maps); positions ``[row, col]`` in
pixels, origin at the centre of the top-left pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from maxrf.errors import ParameterError

__all__ = ["BACKGROUND", "EXTENDED", "PARTICLE", "Segmentation", "segment_map"]

BACKGROUND, EXTENDED, PARTICLE = 0, 1, 2
CLASS_NAMES: dict[int, str] = {BACKGROUND: "background", EXTENDED: "extended", PARTICLE: "particle"}

#: tile side for the local steps (a halo of the line length is added on every side)
TILE = 256
#: a stroke's edge, as a fraction of the local maximum of its ridge (see _strokes)
EDGE_FRACTION = 0.4


# ------------------------------------------------------------------------------ result
@dataclass
class Segmentation:
    """Result of :func:`segment_map`.

    Attributes
    ----------
    classes : ndarray of uint8, shape (H, W)
        0 background, 1 extended (strokes), 2 particles.
    labels : ndarray of int32, shape (H, W)
        Particle labels ``1..n`` (0 elsewhere); label ``i + 1`` is row ``i`` of ``table``.
    table : dict of str to ndarray
        One row per particle: ``label``, ``row``, ``col`` (geometric centroid),
        ``row_weighted``, ``col_weighted`` (centroid weighted by the excess over the
        expected level), ``area`` (pixels), ``peak`` (map maximum), ``excess`` (peak above
        the expected level, map units), ``contrast`` (that excess in noise units),
        ``significance`` (summed excess over its noise), ``on_stroke`` (bool), then one
        column per other element map (its mean over the particle).
    thresholds : dict
        Every threshold used, with the reason for its value.
    evidence : dict
        Noise model, candidates seen and rejected by reason, class fractions.
    verdict : str
        ``'ok'`` or ``'doubtful'``; ``warnings`` says why.
    warnings : list of str
    element : str or None
    """

    classes: np.ndarray
    labels: np.ndarray
    table: dict[str, np.ndarray]
    thresholds: dict[str, Any]
    evidence: dict[str, Any]
    verdict: str = "ok"
    warnings: list[str] = field(default_factory=list)
    element: str | None = None

    @property
    def stroke_mask(self) -> np.ndarray:
        """Boolean mask (H, W) of the extended class (strokes)."""
        return self.classes == EXTENDED

    @property
    def particle_mask(self) -> np.ndarray:
        """Boolean mask (H, W) of the particle class."""
        return self.classes == PARTICLE

    @property
    def n_particles(self) -> int:
        """Number of particles."""
        return int(self.table["label"].size)

    @property
    def centroids_rc(self) -> np.ndarray:
        """Intensity-weighted particle centroids ``[row, col]`` (pixels), shape (n, 2)."""
        return np.c_[self.table["row_weighted"], self.table["col_weighted"]].reshape(-1, 2)

    @property
    def radii(self) -> np.ndarray:
        """Radius (pixels) of the disc with each particle's area, for circling them."""
        return np.sqrt(np.asarray(self.table["area"], dtype=float) / np.pi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: counts, thresholds and why, evidence, verdict, the table."""
        n = self.n_particles
        rows = [{k: _py(v[i]) for k, v in self.table.items()} for i in range(n)]
        return {
            "element": self.element,
            "shape": list(self.classes.shape),
            "n_particles": n,
            "stroke_fraction": float(np.mean(self.classes == EXTENDED)),
            "classes": dict(CLASS_NAMES),
            "thresholds": self.thresholds,
            "evidence": self.evidence,
            "verdict": self.verdict,
            "warnings": list(self.warnings),
            "table": rows,
        }


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


# ------------------------------------------------------------------------------ helpers
def _as_map(element_map: Any) -> np.ndarray:
    try:
        arr = np.asarray(element_map, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"element_map must be a 2-D numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ParameterError(f"element_map must be a 2-D array (rows, cols), got shape {arr.shape}")
    if min(arr.shape) < 8:
        raise ParameterError(f"element_map is too small to segment: shape {arr.shape} (>= 8 x 8)")
    if np.isinf(arr).any():
        raise ParameterError("element_map contains infinite values")
    if np.isnan(arr).all():
        raise ParameterError("element_map contains only NaN values")
    return arr


def _positive(name: str, value: Any, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > lo):
        raise ParameterError(f"{name} must be a finite number > {lo:g}, got {value}")
    return float(value)


def _line_footprint(length: int, angle: float) -> np.ndarray:
    """Boolean footprint of a digital line segment of ``length`` pixels (odd) at ``angle`` rad."""
    half = length // 2
    t = np.arange(-half, half + 1)
    r = np.rint(t * math.sin(angle)).astype(int)
    c = np.rint(t * math.cos(angle)).astype(int)
    fp = np.zeros((2 * half + 1, 2 * half + 1), dtype=bool)
    fp[r + half, c + half] = True
    return fp


def _short(fp: np.ndarray, n: int) -> np.ndarray:
    """The central ``n`` pixels of a normalised line footprint, normalised."""
    h = fp.shape[0] // 2
    k = n // 2
    out = fp[h - k:h + k + 1, h - k:h + k + 1]
    return out / out.sum()


def _smoothing_factor(sigma: float) -> float:
    """Noise std after a Gaussian filter of ``sigma`` px, per unit of white pixel noise."""
    k = np.zeros((31, 31))
    k[15, 15] = 1.0
    return float(np.sqrt(np.sum(ndi.gaussian_filter(k, sigma) ** 2)))


# ------------------------------------------------------------------------------ noise
#: neighbour offsets (row, col) of the pixel differences: right, down and both diagonals
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _robust_sigma(d: np.ndarray) -> float:
    """Standard deviation of the bulk of ``d``: clipped at 3.5 robust sigmas, corrected.

    Smooth in the data (unlike the median absolute deviation of integer counts, which is
    quantised to whole counts).
    """
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med)))
    s0 = max(1.4826 * mad, 0.5 * float(np.std(d)) if mad == 0 else 0.0, 1e-12)
    keep = np.abs(d - med) < 3.5 * s0
    return float(np.std(d[keep]) / 0.99694) if keep.sum() > 2 else s0


def noise_model(element_map: Any, n_bins: int = 16, max_samples: int = 100_000
                ) -> tuple[float, float, dict[str, Any]]:
    """Variance of a map's pixels as a function of their level: ``var = a + b * level``.

    Parameters
    ----------
    element_map : array_like, shape (H, W)
        The map (map units, e.g. counts).
    n_bins : int
        Level bins (equal numbers of pixels).
    max_samples : int
        Pixel pairs used at most per direction (a regular subsample beyond that).

    Returns
    -------
    a, b : float
        Variance at level 0 (map units squared) and per unit of level (1 for Poisson counts).
    info : dict
        ``levels``, ``sigmas`` per bin and the fit's relative residual.

    Notes
    -----
    In each bin of the smoothed level the pixel noise is estimated from the differences of
    neighbouring pixels (horizontal, vertical and both diagonals, variance ``2 var``), in the
    direction with the smallest robust spread: along a stroke that is pure noise, while
    across it the stroke's edges inflate the spread. ``a`` and ``b`` are fitted by
    non-negative least squares.
    """
    from scipy.optimize import nnls

    m = _as_map(element_map)
    fill = np.where(np.isnan(m), np.nanmedian(m), m)
    level = ndi.gaussian_filter(fill, 1.5)
    H, W = m.shape
    step = max(1, int(math.sqrt(H * W / max_samples)))
    rows = np.arange(0, H - 1, step)[:, None]
    cols = np.arange(1, W - 1, step)[None, :]
    lev = level[rows, cols].ravel()  # a regular subsample of pixels and their neighbours
    diffs = [(fill[rows + dr, cols + dc] - fill[rows, cols]).ravel() for dr, dc in _DIRECTIONS]
    edges = np.unique(np.quantile(lev, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, lev, side="right") - 1, 0, edges.size - 2)
    levels, sigmas, counts = [], [], []
    for k in range(edges.size - 1):
        sel = which == k
        if sel.sum() < 50:
            continue
        s = min(_robust_sigma(d[sel]) for d in diffs) / math.sqrt(2.0)
        levels.append(float(np.median(lev[sel])))
        sigmas.append(s)
        counts.append(int(sel.sum()))
    lv_arr, sg_arr = np.array(levels), np.array(sigmas)
    if lv_arr.size == 0:
        s = _robust_sigma(diffs[0]) / math.sqrt(2.0)
        return s * s, 0.0, {"levels": [], "sigmas": [], "fit_residual": 0.0}
    A = np.c_[np.ones_like(lv_arr), np.maximum(lv_arr, 0.0)]
    wts = np.sqrt(np.array(counts, dtype=float)) / np.maximum(sg_arr**2, 1e-12)
    (a, b), _ = nnls(A * wts[:, None], sg_arr**2 * wts)
    pred = np.sqrt(np.maximum(A @ np.array([a, b]), 1e-24))
    resid = float(np.median(np.abs(pred - sg_arr) / np.maximum(sg_arr, 1e-12)))
    if a <= 0 and b <= 0:  # a constant map: no noise seen
        a = float(np.median(sg_arr) ** 2) or 1e-12
    return float(a), float(b), {"levels": levels, "sigmas": sigmas, "fit_residual": resid}


def _paper_level(m: np.ndarray, block: int) -> np.ndarray:
    """Smooth ground level: median of ``block`` x ``block`` blocks, bilinearly interpolated."""
    H, W = m.shape
    nr, nc = max(1, round(H / block)), max(1, round(W / block))
    re = np.linspace(0, H, nr + 1).astype(int)
    ce = np.linspace(0, W, nc + 1).astype(int)
    coarse = np.empty((nr, nc))
    for i in range(nr):
        for j in range(nc):
            v = m[re[i]:re[i + 1], ce[j]:ce[j + 1]]
            coarse[i, j] = np.nanmedian(v) if np.isfinite(v).any() else np.nan
    if np.isnan(coarse).all():
        coarse[:] = 0.0
    coarse = np.where(np.isnan(coarse), np.nanmedian(coarse), coarse)
    rc = (re[:-1] + re[1:] - 1) / 2.0
    cc = (ce[:-1] + ce[1:] - 1) / 2.0
    rows = np.interp(np.arange(H), rc, np.arange(nr)) if nr > 1 else np.zeros(H)
    cols = np.interp(np.arange(W), cc, np.arange(nc)) if nc > 1 else np.zeros(W)
    out = np.empty((H, W), dtype=np.float32)
    for r0 in range(0, H, TILE):
        rr = rows[r0:r0 + TILE]
        grid = np.meshgrid(rr, cols, indexing="ij")
        out[r0:r0 + TILE] = ndi.map_coordinates(coarse, grid, order=1, mode="nearest")
    return out


# ------------------------------------------------------------------------------ local stage
@dataclass
class _Params:
    max_radius: float
    max_width: float
    line_length: int
    stroke_line: int
    n_angles: int
    smooth: float
    significance: float
    matched_significance: float
    stroke_significance: float
    along: int
    a: float
    b: float

    def sigma(self, level: np.ndarray) -> np.ndarray:
        """Pixel noise (map units) at ``level``."""
        return np.sqrt(np.maximum(self.a + self.b * np.maximum(level, 0.0), 1e-24))


def _local_stage(m: np.ndarray, paper: np.ndarray, p: _Params, f_s: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected level without particles, particle z-score and best-line mean of one tile."""
    G = ndi.gaussian_filter(m, p.smooth)
    # a digital line misses a thin curved stroke by up to a pixel at its ends: the 3 x 3
    # maximum lets the line stay on the stroke (and widens a particle by one pixel only)
    D = ndi.grey_dilation(G, size=(3, 3))
    n = p.n_angles
    opened = np.empty((n, *m.shape), dtype=np.float32)
    means = np.empty((n, *m.shape), dtype=np.float32)
    for k in range(n):
        ang = math.pi * k / n
        line = _line_footprint(p.line_length, ang)
        fp = _line_footprint(p.stroke_line, ang).astype(np.float64)
        fp /= fp.sum()
        means[k] = ndi.correlate(m, fp, mode="reflect")
        # opening of the map averaged along the line: the average tames the noise, whose
        # minimum would otherwise sink the opening below the true level
        opened[k] = ndi.grey_opening(ndi.correlate(D, _short(fp, p.along)), footprint=line)
    best = np.argmax(opened, axis=0)
    omax = np.take_along_axis(opened, best[None], 0)[0]
    kk = np.arange(n)[:, None, None]
    dist = np.abs(kk - best[None])
    dist = np.minimum(dist, n - dist)
    opened[dist < max(1, n // 4)] = -np.inf
    o2 = opened.max(axis=0)
    del opened
    sig_s = p.sigma(paper) * f_s
    cross = np.where(o2 - paper > p.stroke_significance * sig_s, o2 - paper, 0.0)
    expected = omax + cross
    z = (G - expected) / (p.sigma(expected) * f_s)
    mstar = np.take_along_axis(means, best[None], 0)[0]
    return expected.astype(np.float32), z.astype(np.float32), mstar.astype(np.float32)


def _tiled(m: np.ndarray, paper: np.ndarray, p: _Params, f_s: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H, W = m.shape
    halo = p.line_length + int(math.ceil(3 * p.smooth)) + 2
    outs = [np.empty((H, W), dtype=np.float32) for _ in range(3)]
    for r0 in range(0, H, TILE):
        for c0 in range(0, W, TILE):
            r1, c1 = min(H, r0 + TILE), min(W, c0 + TILE)
            R0, C0 = max(0, r0 - halo), max(0, c0 - halo)
            R1, C1 = min(H, r1 + halo), min(W, c1 + halo)
            res = _local_stage(m[R0:R1, C0:C1], paper[R0:R1, C0:C1], p, f_s)
            for out, part in zip(outs, res):
                out[r0:r1, c0:c1] = part[r0 - R0:r1 - R0, c0 - C0:c1 - C0]
    return outs[0], outs[1], outs[2]


# ------------------------------------------------------------------------------ particles
def _particles(m: np.ndarray, expected: np.ndarray, z: np.ndarray, p: _Params, f_s: float
               ) -> tuple[np.ndarray, list[dict[str, float]], dict[str, int]]:
    """Particle label image, per-particle measures and rejection counts."""
    from skimage.filters import apply_hysteresis_threshold
    from skimage.measure import regionprops

    zz = np.nan_to_num(z, nan=0.0)
    mask = apply_hysteresis_threshold(zz, p.significance / 2, p.significance)
    lab, n = ndi.label(mask, structure=np.ones((3, 3), dtype=bool))
    rejected = {"not_significant": 0, "elongated": 0, "too_large": 0}
    max_area = math.pi * (p.max_radius + 1.5) ** 2
    max_len = 2 * p.max_radius + 4
    keep = np.zeros(n + 1, dtype=np.int32)
    rows: list[dict[str, float]] = []
    for rp in regionprops(lab):
        sl = rp.slice
        own = rp.image
        exc = (m[sl] - expected[sl])[own]
        var = (p.sigma(expected[sl]) ** 2)[own]
        ok = np.isfinite(exc)
        signif = float(exc[ok].sum() / math.sqrt(max(var[ok].sum(), 1e-24)))
        if signif < p.matched_significance:
            rejected["not_significant"] += 1
            continue
        if rp.area > max_area:
            rejected["too_large"] += 1
            continue
        if rp.area >= 4 and rp.axis_major_length > max_len and rp.eccentricity > 0.85:
            rejected["elongated"] += 1
            continue
        rr, cc = np.nonzero(own)
        rr = rr + sl[0].start
        cc = cc + sl[1].start
        wgt = np.clip(np.nan_to_num(exc), 0.0, None)
        sw = wgt.sum()
        if sw <= 0:
            wgt, sw = np.ones_like(wgt), float(wgt.size)
        zpk = float(np.nanmax(zz[sl][own]))
        rows.append({
            "row": float(rr.mean()), "col": float(cc.mean()),
            "row_weighted": float((wgt * rr).sum() / sw),
            "col_weighted": float((wgt * cc).sum() / sw),
            "area": int(rp.area), "peak": float(np.nanmax(m[sl][own])),
            "excess": zpk * float(p.sigma(np.array(expected[sl][own].max()))) * f_s,
            "contrast": zpk * f_s, "significance": signif,
        })
        keep[rp.label] = len(rows)
    labels = keep[lab]
    return labels, rows, rejected


# ------------------------------------------------------------------------------ strokes
def _strokes(mstar: np.ndarray, paper: np.ndarray, p: _Params) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of the extended features and the count of short regions dropped.

    Significant regions (hysteresis on the mean along the best line) are kept when they are
    longer than a particle; within them the mask is cut at half the local ridge height.
    """
    from skimage.filters import apply_hysteresis_threshold
    from skimage.measure import regionprops

    ridge = mstar - paper
    sig = p.sigma(paper) / math.sqrt(p.stroke_line)
    strong = apply_hysteresis_threshold(np.nan_to_num(ridge / sig), 0.5 * p.stroke_significance,
                                        p.stroke_significance)
    lab, n = ndi.label(strong, structure=np.ones((3, 3), dtype=bool))
    keep = np.zeros(n + 1, dtype=bool)
    min_len = 2.0 * p.line_length
    dropped = 0
    for rp in regionprops(lab):
        r0, c0, r1, c1 = rp.bbox
        if math.hypot(r1 - r0, c1 - c0) < min_len:  # cheap: shorter than its bounding box
            dropped += 1
            continue
        if rp.axis_major_length >= min_len or rp.area >= math.pi * p.line_length**2:
            keep[rp.label] = True
        else:
            dropped += 1
    strong = keep[lab]
    del lab
    size = 2 * int(math.ceil(p.max_width / 2)) + 3
    # the ridge's height: the largest mean along the stroke nearby. Being the maximum of
    # noisy values it lies above the true height, so the edge (half the true height) is cut
    # at EDGE_FRACTION (0.4, chosen on the development seeds) of it
    local_height = ndi.grey_dilation(np.where(strong, ridge, 0.0), size=(size, size))
    return strong & (ridge >= EDGE_FRACTION * local_height), {"short_regions_dropped": dropped}


# ------------------------------------------------------------------------------ entry point
def segment_map(
    element_map: Any,
    *,
    other_maps: Mapping[str, Any] | None = None,
    element: str | None = None,
    max_radius: float = 3.0,
    max_width: float = 4.0,
    line_length: int | None = None,
    n_angles: int = 16,
    smooth: float = 0.7,
    significance: float = 4.0,
    matched_significance: float = 6.0,
    stroke_significance: float = 4.0,
    along: int = 3,
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
        down to half of it. Default 4.5.
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
    max_radius = _positive("max_radius", max_radius)
    max_width = _positive("max_width", max_width)
    smooth = _positive("smooth", smooth)
    for name, v in (("significance", significance), ("matched_significance", matched_significance),
                    ("stroke_significance", stroke_significance)):
        _positive(name, v)
    if isinstance(n_angles, bool) or not isinstance(n_angles, (int, np.integer)) or n_angles < 4:
        raise ParameterError(f"n_angles must be an integer >= 4, got {n_angles!r}")
    if line_length is None:
        line_length = int(math.ceil(4 * max_radius + 3))
    if isinstance(line_length, bool) or not isinstance(line_length, (int, np.integer)):
        raise ParameterError(f"line_length must be an integer, got {line_length!r}")
    line_length = int(line_length) | 1
    if line_length <= 2 * max_radius + 1:
        raise ParameterError(
            f"line_length={line_length} must exceed a particle's diameter (2 * max_radius + 1)")
    others = _check_others(other_maps, m.shape)

    if noise is None:
        a, b, ninfo = noise_model(m)
        nsource = "fitted on the map (pixel differences in level bins)"
    else:
        a, b = (float(v) for v in noise)
        if not (math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0 and a + b > 0):
            raise ParameterError(f"noise must be (a, b) with a, b >= 0, not both 0, got {noise}")
        ninfo = {"levels": [], "sigmas": [], "fit_residual": 0.0}
        nsource = "given"
    block = max(24, 2 * line_length)
    paper = _paper_level(m, block)
    p = _Params(max_radius, max_width, line_length, max(3, int(line_length // 2) | 1), int(n_angles),
                smooth, float(significance), float(matched_significance),
                float(stroke_significance), int(along), a, b)
    f_s = _smoothing_factor(smooth)
    fill = np.where(np.isnan(m), paper, m)
    expected, z, mstar = _tiled(fill, paper, p, f_s)
    z[np.isnan(m)] = np.nan
    # the openings sit a little above or below the true level (noise, the 3 x 3 maximum):
    # the residual's own centre and spread over the map (mostly background) re-standardise it
    z_centre, z_scale = _null_of(z)
    z -= z_centre
    z /= z_scale
    labels, rows, rejected = _particles(fill, expected, z, p, f_s)
    strokes, sinfo = _strokes(mstar, paper, p)
    del mstar
    strokes[np.isnan(m)] = False
    classes = np.zeros(m.shape, dtype=np.uint8)
    classes[strokes] = EXTENDED
    classes[labels > 0] = PARTICLE
    table = _table(rows, labels, strokes, others)

    level = float(np.nanmedian(paper))
    thresholds = {
        "particle_seed": {"value": p.significance, "units": "noise of the smoothed residual",
                          "why": "a local maximum this far above the expected level (paper or "
                                 "stroke under it) is rarely noise; regions grow to half of it"},
        "particle_matched": {"value": p.matched_significance, "units": "noise of the summed excess",
                             "why": "the whole particle's excess over its expected level"},
        "particle_max_area": {"value": math.pi * (max_radius + 1.5) ** 2, "units": "pixels",
                              "why": "a disc of max_radius + 1.5 px: larger is not compact"},
        "line_length": {"value": line_length, "units": "pixels",
                        "why": "longer than a particle (> 2 max_radius + 1): strokes survive "
                               "the line openings, particles do not"},
        "stroke": {"value": p.stroke_significance, "units": "noise of the mean along the stroke",
                   "why": f"mean of {p.stroke_line} px along the best line direction above the "
                          "paper; then half the local ridge height (the stroke's width)"},
        "stroke_min_length": {"value": 2.0 * line_length, "units": "pixels",
                              "why": "shorter significant regions are not strokes"},
        "paper_block": {"value": block, "units": "pixels",
                        "why": "median of blocks: the ground level; extended areas larger "
                               "than a block are read as ground"},
    }
    evidence = {
        "noise_model": {"a": a, "b": b, "source": nsource, **ninfo,
                        "paper_level": level,
                        "paper_noise": float(p.sigma(np.array(level)))},
        "candidates": len(rows) + sum(rejected.values()),
        "rejected": rejected,
        "strokes": sinfo,
        "class_fractions": {CLASS_NAMES[k]: float(np.mean(classes == k)) for k in CLASS_NAMES},
    }
    verdict, warnings = _verdict(m, evidence, p)
    return Segmentation(classes, labels, table, thresholds, evidence, verdict, warnings, element)


def _null_of(z: np.ndarray, max_samples: int = 500_000) -> tuple[float, float]:
    """Robust centre (median) and spread (clipped standard deviation) of a z-score map."""
    step = max(1, int(math.sqrt(z.size / max_samples)))
    sample = z[::step, ::step].ravel()
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
