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


def _short(fp: np.ndarray, n: int) -> np.ndarray:
    """The central ``n`` pixels of a normalised line footprint, normalised."""
    h = fp.shape[0] // 2
    k = n // 2
    out = fp[h - k:h + k + 1, h - k:h + k + 1]
    return out / out.sum()


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
    # raw counts (variance = level): at a few counts a pixel the Poisson tail is far
    # heavier than the Gaussian one, so the summed counts are tested against Poisson
    poisson = p.a < 1.0 and 0.7 <= p.b <= 1.3
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
        if poisson and signif >= p.matched_significance:
            signif = min(signif, _poisson_z(float(m[sl][own][ok].sum()),
                                            float(expected[sl][own][ok].sum())))
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
def _poisson_z(observed: float, expected: float) -> float:
    """Gaussian-equivalent significance of ``observed`` counts where ``expected`` are expected."""
    from scipy.stats import norm, poisson

    if expected <= 0:
        return math.inf if observed > 0 else 0.0
    tail = float(poisson.sf(math.ceil(observed) - 1, expected))
    return float(norm.isf(tail)) if tail > 0 else math.inf


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


