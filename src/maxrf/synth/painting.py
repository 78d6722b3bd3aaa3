"""The spatial design of a synthetic scan: strokes, blobs, paper texture, scatter maps,
the particle and the speckles."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import xraydb
from scipy.ndimage import gaussian_filter

from maxrf.errors import ParameterError


def _smooth_field(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-std random field smooth over ``scale`` pixels (separable, O(HW))."""
    scale = max(float(scale), 1.0)
    gh, gw = int(math.ceil(h / scale)) + 4, int(math.ceil(w / scale)) + 4
    coarse = rng.standard_normal((gh, gw))

    def interp_matrix(n: int, g: int) -> np.ndarray:
        y = (np.arange(n) + 0.5) / scale + 2.0
        k = np.arange(g)
        m = np.exp(-0.5 * ((y[:, None] - k[None, :]) / 0.8) ** 2)
        return m / m.sum(axis=1, keepdims=True)

    f = interp_matrix(h, gh) @ coarse @ interp_matrix(w, gw).T
    f -= f.mean()
    sd = f.std()
    return f / sd if sd > 0 else f


def _stroke(rng: np.random.Generator, h: int, w: int, out: np.ndarray, strength: float) -> None:
    """Add one brush stroke (peak ~ strength) to ``out`` in place."""
    size = min(h, w)
    sigma = max(0.8, rng.uniform(0.015, 0.05) * size)
    margin = 0.05 * np.array([h, w])
    ctrl = rng.uniform(margin, np.array([h, w]) - 1 - margin, size=(4, 2))
    t = np.linspace(0.0, 1.0, 256)[:, None]
    bez = (
        (1 - t) ** 3 * ctrl[0]
        + 3 * (1 - t) ** 2 * t * ctrl[1]
        + 3 * (1 - t) * t**2 * ctrl[2]
        + t**3 * ctrl[3]
    )
    seg = np.hypot(*np.diff(bez, axis=0).T)
    length = float(seg.sum())
    step = 0.5
    n = max(2, int(length / step) + 1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    u = np.linspace(0.0, length, n)
    pts = np.stack([np.interp(u, s, bez[:, 0]), np.interp(u, s, bez[:, 1])], axis=1)
    step = length / max(n - 1, 1) if length > 0 else 1.0
    # pressure varies smoothly along the stroke
    phase = rng.uniform(0, 2 * np.pi, 2)
    freq = rng.uniform(0.5, 2.0, 2)
    x = u / max(length, 1.0)
    pressure = 0.7 + 0.2 * np.sin(2 * np.pi * freq[0] * x + phase[0])
    pressure += 0.1 * np.sin(2 * np.pi * freq[1] * 3 * x + phase[1])
    pressure = np.clip(pressure, 0.2, None) * strength * step * math.sqrt(2 * math.pi) * sigma
    # bilinear splat into the bounding box, then Gaussian cross-section
    pad = int(math.ceil(4 * sigma)) + 2
    r0 = max(0, int(np.floor(pts[:, 0].min())) - pad)
    r1 = min(h, int(np.ceil(pts[:, 0].max())) + pad + 1)
    c0 = max(0, int(np.floor(pts[:, 1].min())) - pad)
    c1 = min(w, int(np.ceil(pts[:, 1].max())) + pad + 1)
    sub = np.zeros((r1 - r0, c1 - c0))
    py, px = pts[:, 0] - r0, pts[:, 1] - c0
    iy, ix = np.floor(py).astype(int), np.floor(px).astype(int)
    fy, fx = py - iy, px - ix
    for dy, dx, wgt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = iy + dy, ix + dx
        ok = (yy >= 0) & (yy < sub.shape[0]) & (xx >= 0) & (xx < sub.shape[1])
        np.add.at(sub, (yy[ok], xx[ok]), pressure[ok] * wgt[ok])
    out[r0:r1, c0:c1] += gaussian_filter(sub, sigma, mode="constant")


def _blob(rng: np.random.Generator, h: int, w: int, out: np.ndarray, strength: float) -> None:
    """Add one soft elliptical blob (peak ~ strength) to ``out`` in place."""
    size = min(h, w)
    sy, sx = np.maximum(1.5, rng.uniform(0.04, 0.15, 2) * size)
    cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
    r0, r1 = max(0, int(cy - 4 * sy)), min(h, int(cy + 4 * sy) + 1)
    c0, c1 = max(0, int(cx - 4 * sx)), min(w, int(cx + 4 * sx) + 1)
    if r1 <= r0 or c1 <= c0:
        return
    gy = np.exp(-0.5 * ((np.arange(r0, r1) - cy) / sy) ** 2)
    gx = np.exp(-0.5 * ((np.arange(c0, c1) - cx) / sx) ** 2)
    out[r0:r1, c0:c1] += strength * np.outer(gy, gx)


def _place_points(
    rng: np.random.Generator,
    n: int,
    h: int,
    w: int,
    margin: int,
    min_dist: float,
    avoid: list[tuple[float, float]],
    avoid_dist: float,
) -> list[tuple[int, int]]:
    placed: list[tuple[int, int]] = []
    if h - 2 * margin < 1 or w - 2 * margin < 1:
        return placed
    for _ in range(200 * max(n, 1)):
        if len(placed) == n:
            break
        p = (int(rng.integers(margin, h - margin)), int(rng.integers(margin, w - margin)))
        if any(math.hypot(p[0] - q[0], p[1] - q[1]) < min_dist for q in placed):
            continue
        if any(math.hypot(p[0] - q[0], p[1] - q[1]) < avoid_dist for q in avoid):
            continue
        placed.append(p)
    return placed


def _paint_maps(rng: np.random.Generator, painted: Sequence[str], all_els: Sequence[str],
                h: int, w: int, counts: float) -> dict[str, np.ndarray]:
    """Element maps (counts, before global scaling): a textured paper of Ca and Fe, then
    strokes and blobs of every painted element."""
    maps: dict[str, np.ndarray] = {el: np.zeros((h, w)) for el in all_els}
    texture = 1.0 + 0.1 * _smooth_field(rng, h, w, min(h, w) / 4)
    texture += 0.03 * _smooth_field(rng, h, w, 2.0)
    np.clip(texture, 0.2, None, out=texture)
    for el in painted:
        m = maps[el]
        if el == "Ca":
            m += rng.uniform(0.15, 0.3) * counts * texture
        elif el == "Fe":
            m += rng.uniform(0.04, 0.08) * counts * texture
        for _ in range(int(rng.integers(1, 4))):
            _stroke(rng, h, w, m, rng.uniform(0.2, 0.6) * counts)
        for _ in range(int(rng.integers(1, 3))):
            _blob(rng, h, w, m, rng.uniform(0.15, 0.4) * counts)
    return maps


def _scatter_maps(rng: np.random.Generator, maps: Mapping[str, np.ndarray],
                  all_els: Sequence[str], h: int, w: int, counts: float) -> dict[str, np.ndarray]:
    """Scatter maps (counts, before global scaling): a mild smooth variation; Compton drops
    and Rayleigh rises where heavy elements (Z >= 37) are abundant."""
    variation = np.clip(1.0 + 0.08 * _smooth_field(rng, h, w, min(h, w) / 3), 0.5, None)
    heavy = sum(
        (maps[el] for el in all_els if xraydb.atomic_number(el) >= 37), start=np.zeros((h, w))
    )
    hn = np.clip(heavy / counts, 0.0, 1.0)
    shares = {
        "compton": rng.uniform(0.08, 0.12),
        "rayleigh": rng.uniform(0.03, 0.05),
        "continuum": rng.uniform(0.12, 0.18),
        "zero": rng.uniform(0.005, 0.02),
    }
    return {
        "rayleigh": shares["rayleigh"] * counts * variation * (1 + 0.3 * hn),
        "compton": shares["compton"] * counts * variation * (1 - 0.3 * hn),
        "continuum": shares["continuum"] * counts * variation * (1 - 0.15 * hn),
        "zero": np.full((h, w), shares["zero"] * counts),
    }


def _add_particle(rng: np.random.Generator, maps: Mapping[str, np.ndarray],
                  part_els: Sequence[str], h: int, w: int, counts: float) -> tuple[int, int] | None:
    """Put the single-pixel particle (every particle element at its image maximum)."""
    if not part_els:
        return None
    pts = _place_points(rng, 1, h, w, min(3, (min(h, w) - 1) // 2), 0.0, [], 0.0)
    if not pts:
        raise ParameterError(f"no room for the particle in a {h} x {w} scan")
    py, px = pts[0]
    for el in part_els:
        m = maps[el]
        peak = max(1.5 * counts, 2.0 * float(m.max())) * rng.uniform(1.0, 1.3)
        m[py, px] = max(m[py, px], peak)
    return pts[0]


def _add_speckles(rng: np.random.Generator, m: np.ndarray, n_speckles: int,
                  particle_pixel: tuple[int, int] | None, counts: float
                  ) -> tuple[list[tuple[float, float]], list[int]]:
    """Add ``n_speckles`` speckles to the map ``m`` in place; their weighted centroids and
    sizes (pixels)."""
    h, w = m.shape
    seeds = _place_points(
        rng, n_speckles, h, w, 4, 6.0, [particle_pixel] if particle_pixel else [], 6.0
    )
    if len(seeds) < n_speckles:
        raise ParameterError(
            f"no room for {n_speckles} speckles in a {h} x {w} scan "
            "(they need 4 pixels from the edges and 6 between them)"
        )
    centroids: list[tuple[float, float]] = []
    sizes: list[int] = []
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    for sy, sx in seeds:
        n = int(rng.integers(1, 10))
        pick = rng.choice(8, size=n - 1, replace=False)
        cells = [(0, 0)] + [offsets[i] for i in pick]
        weights = np.array([1.0] + list(rng.uniform(0.2, 0.6, n - 1)))
        local = float(m[sy - 3 : sy + 4, sx - 3 : sx + 4].max())
        peak = max(counts, 4.0 * local) * rng.uniform(1.0, 1.5)
        vals = peak * weights
        cy = cx = 0.0
        for (dy, dx), v in zip(cells, vals):
            m[sy + dy, sx + dx] += v
            cy += (sy + dy) * v
            cx += (sx + dx) * v
        centroids.append((cy / vals.sum(), cx / vals.sum()))
        sizes.append(n)
    return centroids, sizes
