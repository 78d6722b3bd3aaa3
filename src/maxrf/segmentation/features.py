"""Line openings (tile by tile), particle regions and stroke masks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from maxrf.segmentation.noise import TILE

#: a stroke's edge, as a fraction of the local maximum of its ridge (see _strokes)
EDGE_FRACTION = 0.4


def _line_footprint(length: int, angle: float) -> np.ndarray:
    """Boolean footprint of a digital line segment of ``length`` pixels (odd) at ``angle`` rad."""
    half = length // 2
    t = np.arange(-half, half + 1)
    r = np.rint(t * math.sin(angle)).astype(int)
    c = np.rint(t * math.cos(angle)).astype(int)
    fp = np.zeros((2 * half + 1, 2 * half + 1), dtype=bool)
    fp[r + half, c + half] = True
    return fp


def _offsets(length: int, angle: float) -> np.ndarray:
    """Distinct ``(row, col)`` offsets of the pixels of :func:`_line_footprint`."""
    fp = _line_footprint(length, angle)
    h = fp.shape[0] // 2
    return np.argwhere(fp) - h


def _along(a: np.ndarray, offsets: np.ndarray, op: str) -> np.ndarray:
    """Minimum, maximum or mean of ``a`` over a line of pixel offsets (edges mirrored).

    The same values as :func:`scipy.ndimage.grey_erosion` / ``grey_dilation`` /
    ``correlate`` with the line as footprint, computed as whole-array operations on shifted
    views, several times faster for these long, thin footprints.
    """
    pad = int(np.abs(offsets).max()) if offsets.size else 0
    P = np.pad(a, pad, mode="symmetric") if pad else a
    H, W = a.shape

    def view(dr: int, dc: int) -> np.ndarray:
        return P[pad + dr:pad + dr + H, pad + dc:pad + dc + W]

    out = view(*offsets[0]).copy()
    ufunc = {"min": np.minimum, "max": np.maximum, "mean": np.add}[op]
    for dr, dc in offsets[1:]:
        ufunc(out, view(dr, dc), out=out)
    if op == "mean":
        out /= len(offsets)
    return out


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
    G = ndi.gaussian_filter(m.astype(np.float32), p.smooth)
    # a digital line misses a thin curved stroke by up to a pixel at its ends: the 3 x 3
    # maximum lets the line stay on the stroke (and widens a particle by one pixel only)
    D = ndi.grey_dilation(G, size=(3, 3))
    mf = m.astype(np.float32)
    n = p.n_angles
    opened = np.empty((n, *m.shape), dtype=np.float32)
    means = np.empty((n, *m.shape), dtype=np.float32)
    for k in range(n):
        ang = math.pi * k / n
        line = _offsets(p.line_length, ang)
        means[k] = _along(mf, _offsets(p.stroke_line, ang), "mean")
        # opening of the map averaged along the line: the average tames the noise, whose
        # minimum would otherwise sink the opening below the true level
        smooth = _along(D, _offsets(p.along, ang), "mean")
        opened[k] = _along(_along(smooth, line, "min"), line, "max")
    best = np.argmax(opened, axis=0)
    omax = np.take_along_axis(opened, best[None], 0)[0]
    # the best opening at least 45 degrees away from the best one (a crossing stroke)
    o2 = np.full(m.shape, -np.inf, dtype=np.float32)
    for k in range(n):
        dist = np.abs(k - best)
        far = np.minimum(dist, n - dist) >= max(1, n // 4)
        np.maximum(o2, np.where(far, opened[k], -np.inf), out=o2)
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

    zz = np.nan_to_num(z, nan=0.0)
    mask = apply_hysteresis_threshold(zz, p.significance / 2, p.significance)
    lab, n = ndi.label(mask, structure=np.ones((3, 3), dtype=bool))
    rejected = {"not_significant": 0, "elongated": 0, "too_large": 0}
    # raw counts (variance = level): at a few counts a pixel the Poisson tail is far
    # heavier than the Gaussian one, so the summed counts are tested against Poisson
    poisson = p.a < 1.0 and 0.7 <= p.b <= 1.3
    max_area = math.pi * (p.max_radius + 1.5) ** 2
    max_len = 2 * p.max_radius + 4
    keep = np.zeros(n + 1, dtype=np.int32)
    rows: list[dict[str, float]] = []
    for i, sl in enumerate(ndi.find_objects(lab)):
        if sl is None:
            continue
        own = lab[sl] == i + 1
        area = int(own.sum())
        exc = (m[sl] - expected[sl])[own]
        var = (p.sigma(expected[sl]) ** 2)[own]
        ok = np.isfinite(exc)
        signif = float(exc[ok].sum() / math.sqrt(max(var[ok].sum(), 1e-24)))
        if poisson and signif >= p.matched_significance:
            signif = min(signif, _poisson_z(float(m[sl][own][ok].sum()),
                                            float(expected[sl][own][ok].sum())))
        if signif < p.matched_significance:
            rejected["not_significant"] += 1
            continue
        if area > max_area:
            rejected["too_large"] += 1
            continue
        rr, cc = np.nonzero(own)
        major, ecc = _shape(rr, cc)
        if area >= 4 and major > max_len and ecc > 0.85:
            rejected["elongated"] += 1
            continue
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
            "area": area, "peak": float(np.nanmax(m[sl][own])),
            "excess": zpk * float(p.sigma(np.array(expected[sl][own].max()))) * f_s,
            "contrast": zpk * f_s, "significance": signif,
        })
        keep[i + 1] = len(rows)
    labels = keep[lab]
    return labels, rows, rejected


# ------------------------------------------------------------------------------ strokes
def _poisson_z(observed: float, expected: float) -> float:
    """Gaussian-equivalent significance of ``observed`` counts where ``expected`` are expected."""
    from scipy.special import ndtri, pdtrc

    if expected <= 0:
        return math.inf if observed > 0 else 0.0
    tail = float(pdtrc(math.ceil(observed) - 1, expected))  # P(X >= observed)
    return float(-ndtri(tail)) if tail > 0 else math.inf


def _shape(rr: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """Major axis length (pixels) and eccentricity of a region's pixels, as skimage's
    regionprops defines them (from the second central moments)."""
    if rr.size < 2:
        return 0.0, 0.0
    cov = np.cov(np.vstack([rr, cc]).astype(float), bias=True)
    l2, l1 = np.linalg.eigvalsh(cov)
    l1, l2 = max(l1, 0.0), max(l2, 0.0)
    return 4.0 * math.sqrt(l1), (math.sqrt(1.0 - l2 / l1) if l1 > 0 else 0.0)


def _strokes(mstar: np.ndarray, paper: np.ndarray, p: _Params) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of the extended features and the count of short regions dropped.

    Significant regions (hysteresis on the mean along the best line) are kept when they are
    longer than a particle; within them the mask is cut at half the local ridge height.
    """
    from skimage.filters import apply_hysteresis_threshold
    ridge = mstar - paper
    sig = p.sigma(paper) / math.sqrt(p.stroke_line)
    strong = apply_hysteresis_threshold(np.nan_to_num(ridge / sig), 0.5 * p.stroke_significance,
                                        p.stroke_significance)
    lab, n = ndi.label(strong, structure=np.ones((3, 3), dtype=bool))
    keep = np.zeros(n + 1, dtype=bool)
    min_len = 2.0 * p.line_length
    dropped = 0
    for i, sl in enumerate(ndi.find_objects(lab)):
        if sl is None:
            continue
        if math.hypot(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) < min_len:
            dropped += 1  # cheap: shorter than its bounding box's diagonal
            continue
        rr, cc = np.nonzero(lab[sl] == i + 1)
        if _shape(rr, cc)[0] >= min_len or rr.size >= math.pi * p.line_length**2:
            keep[i + 1] = True
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


