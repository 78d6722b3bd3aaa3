"""Synthetic paintings made of materials (pigment mixtures) with known layout.

The truth that :mod:`maxrf.decomposition` is measured against: each *material* is a
fixed mixture of elements (vermilion Hg + S, umber Fe + Mn, brass Cu + Zn...), so several
materials share elements; the picture is a partition into regions, each holding one or
two materials (a paint layer over a ground), with a smooth texture in every material's
abundance. The expected counts of pixel ``p`` and channel ``c`` are::

    lambda[p, c] = sum_m abundance_m[p] * spectrum_m[c] + scatter[p] * S[c]

where ``spectrum_m`` is the unit-area sum of its elements' detector responses
(:func:`maxrf.physics.element_spectrum`) weighted by the mixture, ``S`` the unit-area
anode scatter (Rayleigh + Compton + continuum) and the zero peak, and the stored counts
are ``Poisson(lambda)``. Written as a ripple pair, streaming, so cubes larger than the
memory can be made for benchmarks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.io.ripple import RippleWriter

__all__ = ["MATERIALS", "MaterialTruth", "make_material_scan", "material_spectra"]

#: element mixtures (weights of each element's line counts) of common materials
MATERIALS: dict[str, dict[str, float]] = {
    "vermilion": {"Hg": 1.0, "S": 0.15},
    "lead white": {"Pb": 1.0},
    "umber": {"Fe": 1.0, "Mn": 0.45},
    "yellow ochre": {"Fe": 1.0, "Ca": 0.25, "K": 0.1},
    "verdigris": {"Cu": 1.0},
    "brass": {"Cu": 1.0, "Zn": 0.7},
    "chalk": {"Ca": 1.0, "Sr": 0.02},
    "titanium white": {"Ti": 1.0, "Ba": 0.3},
}


@dataclass
class MaterialTruth:
    """Ground truth of :func:`make_material_scan`.

    Attributes
    ----------
    materials : list of str
        Material names, in the order of ``abundances`` and ``spectra``.
    abundances : numpy.ndarray
        ``(M, H, W)`` expected counts of each material in each pixel.
    spectra : numpy.ndarray
        ``(M, C)`` unit-area spectrum of each material.
    scatter : numpy.ndarray
        ``(H, W)`` expected scatter counts.
    labels : numpy.ndarray
        ``(H, W)`` int: index of the region's material combination (the true classes).
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV).
    shape : tuple of int
        ``(H, W, C)``.
    """

    materials: list[str]
    abundances: np.ndarray
    spectra: np.ndarray
    scatter: np.ndarray
    labels: np.ndarray
    energies: np.ndarray
    shape: tuple[int, int, int]
    rpl_path: str | None = None


def material_spectra(
    materials: Sequence[str] | Mapping[str, Mapping[str, float]],
    energies: np.ndarray,
    *,
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
) -> np.ndarray:
    """Unit-area spectra ``(M, C)`` of materials (names of :data:`MATERIALS` or mixtures).

    Parameters
    ----------
    materials : sequence of str, or mapping of str to {element: weight}
        Materials by name, or explicit mixtures.
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV).
    tube_kv : float
        Tube voltage (kV): lines above it are not excited.
    fwhm_at_6keV : float
        Detector FWHM at 5.9 keV (keV).
    """
    mixes = materials if isinstance(materials, Mapping) else {m: _mixture(m) for m in materials}
    out = []
    for mix in mixes.values():
        total = np.zeros(energies.size)
        for el, weight in mix.items():
            total += weight * physics.element_spectrum(el, energies, tube_kv=tube_kv,
                                                       fwhm_at_6keV=fwhm_at_6keV)
        area = total.sum()
        if area <= 0:
            raise ParameterError(f"material {mix} has no lines on this energy axis")
        out.append(total / area)
    return np.array(out)


def _mixture(name: str) -> dict[str, float]:
    try:
        return MATERIALS[name]
    except KeyError:
        raise ParameterError(f"unknown material {name!r}; known: {sorted(MATERIALS)}") from None


def _regions(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """A partition of the image into ``n`` regions: Voronoi cells of random seeds, with
    wavy borders (a smooth noise field displaces the distances)."""
    pts = np.c_[rng.uniform(0, h, n), rng.uniform(0, w, n)]
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    scale = max(h, w)
    d = np.stack([np.hypot(yy - p[0], xx - p[1]) for p in pts])
    d += 0.08 * scale * np.stack([_smooth(rng, h, w, scale / 8) for _ in range(n)])
    return d.argmin(axis=0)


def _smooth(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    f = gaussian_filter(rng.standard_normal((h, w)), sigma, mode="wrap")
    return f / (f.std() or 1.0)


def _layout(rng: np.random.Generator, h: int, w: int, n_mat: int, n_regions: int,
            counts_per_pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Abundance maps ``(M, H, W)`` and region labels: material 0 is the ground under every
    region; each region adds one paint material, or two (overlapping layers)."""
    for _ in range(50):  # every region must hold pixels, so every material is present
        regions = _regions(rng, h, w, n_regions)
        if np.bincount(regions.ravel(), minlength=n_regions).min() >= max(4, h * w // (8 * n_regions)):
            break
    combos: list[tuple[int, ...]] = [(0,)] + [(m,) for m in range(1, n_mat)]
    pairs = [(a, b) for a in range(1, n_mat) for b in range(a + 1, n_mat)]
    rng.shuffle(pairs)
    combos += pairs[: max(0, n_regions - len(combos))]
    order = rng.permutation(n_regions) % len(combos)
    ab = np.zeros((n_mat, h, w))
    level = {m: rng.uniform(0.5, 1.0) for m in range(n_mat)}
    for m in range(n_mat):
        texture = np.clip(1.0 + 0.15 * _smooth(rng, h, w, 3.0), 0.5, 1.5)
        base = 0.25 if m == 0 else level[m]
        ab[m] = base * texture
    labels = np.zeros((h, w), dtype=np.int32)
    for r in range(n_regions):
        combo = combos[order[r]]
        cell = regions == r
        labels[cell] = order[r]
        for m in range(1, n_mat):
            if m not in combo:
                ab[m][cell] = 0.0
        if combo != (0,):  # a paint layer over the ground hides most of it
            ab[0][cell] *= 0.3
    _, labels = np.unique(labels, return_inverse=True)
    return ab * counts_per_pixel, labels.reshape(h, w)


def make_material_scan(
    path: str | os.PathLike,
    *,
    height: int = 48,
    width: int = 64,
    channels: int = 1024,
    gain_keV: float = 0.02,
    offset_keV: float = -0.1,
    materials: Sequence[str] = ("chalk", "vermilion", "lead white", "umber", "verdigris"),
    n_regions: int = 8,
    counts_per_pixel: float = 1500.0,
    scatter_fraction: float = 0.3,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    seed: int = 0,
    block_rows: int = 16,
) -> MaterialTruth:
    """Write a synthetic painting of materials (ripple pair with calibration) and its truth.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.rpl`` path (the ``.raw`` is written beside it).
    height, width, channels : int
        Cube shape (pixels, pixels, channels).
    gain_keV, offset_keV : float
        Energy calibration written into the header (keV per channel, keV).
    materials : sequence of str
        Names from :data:`MATERIALS`; the first is the ground under everything.
    n_regions : int
        Regions of the picture (each holds one material combination).
    counts_per_pixel : float
        Scale of a material's counts in a pixel (counts).
    scatter_fraction : float
        Scatter counts as a fraction of ``counts_per_pixel``.
    anode : str
        Tube anode (scatter lines).
    tube_kv : float
        Tube voltage (kV).
    seed : int
        Random seed.
    block_rows : int
        Rows generated and written at a time (bounds the memory).
    """
    if len(materials) < 2:
        raise ParameterError("at least two materials (a ground and a paint) are needed")
    rng = np.random.default_rng(seed)
    e = offset_keV + gain_keV * np.arange(channels)
    spectra = material_spectra(list(materials), e, tube_kv=tube_kv)
    ab, labels = _layout(rng, height, width, len(materials), n_regions, counts_per_pixel)
    sc = physics.scatter_spectrum(e, anode=anode, tube_kv=tube_kv, theta_deg=100.0)
    s_tpl = 0.35 * sc["compton"] + 0.15 * sc["rayleigh"] + 0.5 * sc["continuum"]
    s_tpl = s_tpl / s_tpl.sum()
    scatter = scatter_fraction * counts_per_pixel * np.clip(
        1.0 + 0.1 * _smooth(rng, height, width, 6.0), 0.5, 1.5)
    rpl = Path(path).with_suffix(".rpl")
    with RippleWriter(rpl, (height, width, channels), np.uint16,
                      calibration=(gain_keV, offset_keV)) as writer:
        for r0 in range(0, height, block_rows):
            rows = slice(r0, min(r0 + block_rows, height))
            lam = np.tensordot(ab[:, rows], spectra, axes=(0, 0))
            lam += scatter[rows, :, None] * s_tpl
            counts = np.random.default_rng((seed, r0)).poisson(lam)
            writer.write_rows(r0, np.clip(counts, 0, 65535).astype(np.uint16))
    return MaterialTruth(list(materials), ab.astype(np.float32), spectra, scatter.astype(np.float32),
                         labels, e, (height, width, channels), str(rpl))
