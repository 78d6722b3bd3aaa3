"""Synthetic drawings on paper with known truth: ink strokes, iron speckles, a brass particle.

:func:`make_drawing` returns Poisson-count element maps of a drawing and its truth, for
testing and benchmarking :func:`maxrf.segmentation.segment_map`:

- paper: Ca and a low level of Fe (and traces of Mn, Cu, Zn) with a smooth texture;
- iron-gall ink strokes (Fe with Mn at ``mn_ratio`` of the Fe), gently curved, crossing,
  ``width`` 1-4 pixels, with a smoothly varying pressure; where strokes cross the ink adds;
- Fe speckles, discs of radius 1-3 pixels, on the paper and on the strokes;
- one brass particle (Cu + Zn, no Fe).

Contrasts are in units of the *local* counting noise: a stroke of contrast ``c`` lies
``c * sqrt(paper)`` counts above the paper; a speckle of contrast ``c`` lies
``c * sqrt(local)`` counts above its surroundings (paper, or paper + ink), ``local`` being
the expected counts there. Pixels integrate the ink over their area: a stroke of width
``w`` covers a pixel whose centre lies at distance ``d`` from its centre line by
``clip(w / 2 + 0.5 - d, 0, 1)`` (a disc of radius ``r`` likewise), so a stroke's counts
summed across it are ``w`` times its contrast. Truth: the stroke mask is the pixels at least
half covered by ink (``d <= w / 2``), the particle centres are the disc centres (sub-pixel).

Units: counts (expected or Poisson draws) per pixel; positions in pixels, ``[row, col]``
with the origin at the centre of the top-left pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from maxrf.errors import ParameterError

__all__ = ["DrawingTruth", "make_drawing"]

#: elements of a drawing's maps
DRAWING_ELEMENTS: tuple[str, ...] = ("Ca", "Mn", "Fe", "Cu", "Zn")


#: speckles and the brass particle keep this far (pixels) from the edges
_MARGIN = 5.0


@dataclass
class DrawingTruth:
    """Ground truth of a synthetic drawing.

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)`` pixels.
    expected : dict of str to ndarray
        Expected counts per pixel of every element (before the Poisson draw).
    stroke_mask : ndarray of bool, shape (H, W)
        Pixels at least half covered by ink.
    stroke_widths, stroke_contrasts : ndarray of float, shape (n_strokes,)
        Width (pixels) and contrast (units of the paper's noise) of every stroke.
    particle_centres : ndarray of float, shape (n, 2)
        ``[row, col]`` of the Fe speckles (pixels).
    particle_radii, particle_contrasts : ndarray of float, shape (n,)
        Radius (pixels) and contrast (units of the local noise) of every speckle.
    particle_on_stroke : ndarray of bool, shape (n,)
        Speckles placed on a stroke's centre line.
    brass_centre : ndarray of float, shape (2,) or None
        ``[row, col]`` of the brass particle (Cu + Zn), pixels.
    brass_radius : float
        Its radius, pixels.
    paper_fe : float
        Mean expected Fe counts of the paper.
    seed : int
    """

    shape: tuple[int, int]
    expected: dict[str, np.ndarray]
    stroke_mask: np.ndarray
    stroke_widths: np.ndarray
    stroke_contrasts: np.ndarray
    particle_centres: np.ndarray
    particle_radii: np.ndarray
    particle_contrasts: np.ndarray
    particle_on_stroke: np.ndarray
    brass_centre: np.ndarray | None = None
    brass_radius: float = 0.0
    paper_fe: float = 0.0
    seed: int = 0
    stroke_paths: list[np.ndarray] = field(default_factory=list)


def _texture(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean unit-std smooth random field (bilinear zoom of a coarse normal grid)."""
    from scipy.ndimage import zoom

    h, w = shape
    gh, gw = max(2, int(math.ceil(h / scale)) + 1), max(2, int(math.ceil(w / scale)) + 1)
    f = zoom(rng.standard_normal((gh, gw)), (h / gh, w / gw), order=1, grid_mode=True,
             mode="nearest")[:h, :w]
    f = f - f.mean()
    sd = f.std()
    return f / sd if sd > 0 else f


def _stroke_path(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Centre line of a gently curved stroke crossing much of the sheet: (n, 2) points 0.25 px apart."""
    size = min(h, w)
    for _ in range(100):
        p0 = rng.uniform([0.05 * h, 0.05 * w], [0.95 * h, 0.95 * w])
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(0.4, 0.9) * size
        d = np.array([math.sin(ang), math.cos(ang)])
        p3 = p0 + length * d
        if 2 <= p3[0] < h - 2 and 2 <= p3[1] < w - 2:
            break
    else:  # pragma: no cover - a sheet of at least 16 px always has room
        p3 = np.array([h / 2, w / 2])
    normal = np.array([-d[1], d[0]])
    bend = rng.uniform(-0.12, 0.12, 2) * length  # radius of curvature >~ the stroke length
    p1 = p0 + (p3 - p0) / 3 + bend[0] * normal
    p2 = p0 + 2 * (p3 - p0) / 3 + bend[1] * normal
    t = np.linspace(0, 1, 512)[:, None]
    bez = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    seg = np.hypot(*np.diff(bez, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    u = np.arange(0.0, s[-1], 0.25)
    return np.c_[np.interp(u, s, bez[:, 0]), np.interp(u, s, bez[:, 1])]


def _near_pixels(points: np.ndarray, reach: float, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the pixels within ``reach`` (+1) of any of ``points``."""
    h, w = shape
    k = int(math.ceil(reach)) + 1
    rr, cc = np.rint(points).astype(int).T
    off = np.arange(-k, k + 1)
    rows = (rr[:, None] + off[None, :]).repeat(off.size, axis=1).ravel()
    cols = np.tile(cc[:, None] + off[None, :], (1, off.size)).ravel()
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    return np.unique(rows[ok] * w + cols[ok])


def _distance_to(points: np.ndarray, reach: float, shape: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels near a sampled curve, their distance to it (pixels) and the nearest point's index."""
    idx = _near_pixels(points, reach, shape)
    rows, cols = np.divmod(idx, shape[1])
    dist, near = cKDTree(points).query(np.c_[rows, cols].astype(float))
    return idx, dist, near


@dataclass
class _Strokes:
    """The ink of the strokes (Fe counts above the paper), their pixels and parameters."""

    ink: np.ndarray
    mask: np.ndarray
    paths: list[np.ndarray]
    widths: list[float]
    contrasts: list[float]


def _draw_strokes(rng: np.random.Generator, h: int, w: int, n_strokes: int,
                  widths: tuple[float, float], contrasts: tuple[float, float],
                  fe_paper: float) -> _Strokes:
    ink = np.zeros(h * w)
    stroke_mask = np.zeros(h * w, dtype=bool)
    paths, s_widths, s_contr = [], [], []
    for _ in range(n_strokes):
        path = _stroke_path(rng, h, w)
        width = float(rng.uniform(*widths))
        contrast = float(rng.uniform(*contrasts))
        phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
        pressure = 1.0 + 0.15 * np.sin(2 * np.pi * freq * np.linspace(0, 1, len(path)) + phase)
        idx, dist, near = _distance_to(path, width / 2 + 1, (h, w))
        cover = np.clip(width / 2 + 0.5 - dist, 0.0, 1.0)
        ink[idx] += cover * contrast * math.sqrt(fe_paper) * pressure[near]
        stroke_mask[idx[dist <= width / 2]] = True
        paths.append(path)
        s_widths.append(width)
        s_contr.append(contrast)
    return _Strokes(ink.reshape(h, w), stroke_mask.reshape(h, w), paths, s_widths, s_contr)


def _crossings(paths: list[np.ndarray], trees: list[cKDTree], h: int, w: int) -> np.ndarray:
    """Centre-line points of one stroke within a few pixels of another's."""
    crowded = np.zeros((h, w), dtype=bool)
    for i, p in enumerate(paths):
        for j in range(len(paths)):
            if j != i:
                d, _ = trees[j].query(p, distance_upper_bound=8.0)
                hit = np.rint(p[np.isfinite(d)]).astype(int)
                crowded[hit[:, 0], hit[:, 1]] = True
    return crowded


@dataclass
class _Speckles:
    """Centres (pixels), radii, contrasts and placement of the Fe speckles."""

    centres: list[np.ndarray] = field(default_factory=list)
    radii: list[float] = field(default_factory=list)
    contrasts: list[float] = field(default_factory=list)
    on_stroke: list[bool] = field(default_factory=list)


def _place_speckles(rng: np.random.Generator, h: int, w: int, n_speckles: int,
                    paths: list[np.ndarray], trees: list[cKDTree], crowded: np.ndarray,
                    on_stroke_fraction: float, radii: tuple[float, float],
                    contrasts: tuple[float, float]) -> _Speckles:
    """Speckles on the strokes' centre lines (away from crossings) or clear of every stroke,
    kept apart from each other and from the edges."""
    out = _Speckles()
    margin = _MARGIN
    for _ in range(400 * max(n_speckles, 1)):
        if len(out.centres) == n_speckles:
            break
        r = float(rng.uniform(*radii))
        if paths and rng.uniform() < on_stroke_fraction:
            k = int(rng.integers(len(paths)))
            c = paths[k][int(rng.integers(len(paths[k])))] + rng.uniform(-0.3, 0.3, 2)
            rc = np.rint(c).astype(int)
            if not (0 <= rc[0] < h and 0 <= rc[1] < w) or crowded[rc[0], rc[1]]:
                continue
            onst = True
        else:
            c = rng.uniform([margin, margin], [h - 1 - margin, w - 1 - margin])
            # on the paper: clear of every stroke by the radius + 3 px
            if any(t.query(c)[0] < r + 3 + 2.5 for t in trees):
                continue
            onst = False
        if not (margin <= c[0] <= h - 1 - margin and margin <= c[1] <= w - 1 - margin):
            continue
        if any(math.hypot(*(c - o)) < 2 * (r + ro) + 4 for o, ro in zip(out.centres, out.radii)):
            continue
        out.centres.append(c)
        out.radii.append(r)
        out.contrasts.append(float(rng.uniform(*contrasts)))
        out.on_stroke.append(onst)
    return out


def _speckle_counts(fe: np.ndarray, sp: _Speckles) -> np.ndarray:
    """Fe counts the speckles add: a contrast in units of the local counting noise."""
    h, w = fe.shape
    speck = np.zeros((h, w))
    for c, r, k in zip(sp.centres, sp.radii, sp.contrasts):
        r0, r1 = max(0, int(c[0] - r - 2)), min(h, int(c[0] + r + 3))
        c0, c1 = max(0, int(c[1] - r - 2)), min(w, int(c[1] + r + 3))
        rr, cc = np.mgrid[r0:r1, c0:c1]
        cover = np.clip(r + 0.5 - np.hypot(rr - c[0], cc - c[1]), 0.0, 1.0)
        local = float(fe[int(round(c[0])), int(round(c[1]))])
        speck[r0:r1, c0:c1] += cover * k * math.sqrt(local)
    return speck


def _brass(rng: np.random.Generator, h: int, w: int, trees: list[cKDTree],
           centres: list[np.ndarray]) -> tuple[np.ndarray | None, float, np.ndarray | None]:
    """Centre, radius and pixel cover of the brass particle on the paper (None if no room)."""
    margin = _MARGIN
    for _ in range(1000):
        c = rng.uniform([margin, margin], [h - 1 - margin, w - 1 - margin])
        if all(t.query(c)[0] > 8 for t in trees) and all(
                math.hypot(*(c - o)) > 10 for o in centres):
            r = float(rng.uniform(1.5, 2.5))
            rr, cc = np.mgrid[:h, :w]
            return c, r, np.clip(r + 0.5 - np.hypot(rr - c[0], cc - c[1]), 0, 1)
    return None, 0.0, None


def _other_elements(rng: np.random.Generator, tex: np.ndarray, paper: np.ndarray,
                    ink: np.ndarray, mn_ratio: float, brass: bool, trees: list[cKDTree],
                    centres: list[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray | None,
                                                        float]:
    """Expected Ca, Mn, Cu and Zn counts (paper, ink, the brass particle); its centre, radius."""
    h, w = tex.shape
    ca = rng.uniform(150, 300) * tex
    mn = 0.5 + 0.02 * paper + mn_ratio * ink
    cu = np.full((h, w), 1.0)
    zn = np.full((h, w), 1.5)
    brass_c, brass_r = None, 0.0
    if brass:
        brass_c, brass_r, cover = _brass(rng, h, w, trees, centres)
        if brass_c is not None:
            cu = cu + 400.0 * cover
            zn = zn + 250.0 * cover
    return {"Ca": ca, "Mn": mn, "Cu": cu, "Zn": zn}, brass_c, brass_r


def make_drawing(
    shape: tuple[int, int] = (128, 128), *, seed: int = 0, n_strokes: int = 7,
    n_speckles: int = 15, on_stroke_fraction: float = 0.35,
    widths: tuple[float, float] = (1.0, 4.0), radii: tuple[float, float] = (1.0, 3.0),
    stroke_contrasts: tuple[float, float] = (3.0, 15.0),
    speckle_contrasts: tuple[float, float] = (3.0, 12.0),
    paper_fe: tuple[float, float] = (20.0, 60.0), mn_ratio: float = 0.15, brass: bool = True,
) -> tuple[dict[str, np.ndarray], DrawingTruth]:
    """Poisson-count element maps of a synthetic drawing, and its truth.

    Parameters
    ----------
    shape : (int, int)
        Map shape, pixels (each side >= 16).
    seed : int
        Random seed; everything random derives from it.
    n_strokes, n_speckles : int
        Number of ink strokes and of Fe speckles (0 for clean paper).
    on_stroke_fraction : float
        Share of the speckles placed on a stroke's centre line (away from crossings).
    widths : (float, float)
        Range of stroke widths, pixels.
    radii : (float, float)
        Range of speckle radii, pixels.
    stroke_contrasts, speckle_contrasts : (float, float)
        Ranges of contrast, in units of the local counting noise (see the module notes).
    paper_fe : (float, float)
        Range of the paper's mean Fe counts per pixel.
    mn_ratio : float
        Mn counts of the ink per Fe count of the ink.
    brass : bool
        Add one brass particle (Cu + Zn, radius 1.5-2.5 px) on the paper.

    Returns
    -------
    maps : dict of str to ndarray of float32, shape (H, W)
        Poisson counts of Ca, Mn, Fe, Cu and Zn.
    truth : DrawingTruth
    """
    h, w = (int(v) for v in shape)
    if h < 16 or w < 16:
        raise ParameterError(f"a drawing needs at least 16 x 16 pixels, got {shape}")
    if n_strokes < 0 or n_speckles < 0:
        raise ParameterError("n_strokes and n_speckles must be >= 0")
    rng = np.random.default_rng(seed)
    fe_paper = float(rng.uniform(*paper_fe))
    tex = np.clip(1.0 + 0.08 * _texture(rng, (h, w), min(h, w) / 3), 0.5, None)
    paper = fe_paper * tex
    st = _draw_strokes(rng, h, w, n_strokes, widths, stroke_contrasts, fe_paper)
    fe = paper + st.ink
    trees = [cKDTree(p) for p in st.paths]
    sp = _place_speckles(rng, h, w, n_speckles, st.paths, trees, _crossings(st.paths, trees, h, w),
                         on_stroke_fraction, radii, speckle_contrasts)
    fe = fe + _speckle_counts(fe, sp)
    others, brass_c, brass_r = _other_elements(rng, tex, paper, st.ink, mn_ratio, brass, trees,
                                               sp.centres)
    expected = {"Ca": others["Ca"], "Mn": others["Mn"], "Fe": fe, "Cu": others["Cu"],
                "Zn": others["Zn"]}
    maps = {el: rng.poisson(v).astype(np.float32) for el, v in expected.items()}
    truth = DrawingTruth(
        shape=(h, w), expected={el: v.astype(np.float32) for el, v in expected.items()},
        stroke_mask=st.mask, stroke_widths=np.array(st.widths),
        stroke_contrasts=np.array(st.contrasts),
        particle_centres=np.array(sp.centres, dtype=float).reshape(-1, 2),
        particle_radii=np.array(sp.radii), particle_contrasts=np.array(sp.contrasts),
        particle_on_stroke=np.array(sp.on_stroke, dtype=bool),
        brass_centre=None if brass_c is None else np.asarray(brass_c, dtype=float),
        brass_radius=brass_r, paper_fe=fe_paper, seed=int(seed), stroke_paths=st.paths,
    )
    return maps, truth
