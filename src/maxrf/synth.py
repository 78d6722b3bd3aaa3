"""Synthetic MA-XRF scans with ground truth: the workhorse of the test suite.

:func:`make_scan` writes a ripple pair (``.rpl`` / ``.raw``, vector order, little-endian)
*streaming*, one block of rows at a time: only ``(H, W)`` maps and one block of
``rows x W x C`` expected counts are in memory, so scans far larger than the RAM can be
generated. Beside the pair it writes ``<stem>.truth.npz`` and ``<stem>.truth.json``
(read back with :func:`load_truth`).

Model of the expected counts of pixel ``(y, x)`` and channel ``c`` (all templates from
:mod:`maxrf.physics`)::

    lambda = sum_e map_e(y, x) * element_spectrum(e)[c]          # lines + Si escape peaks
           + rayleigh(y, x) * R[c] + compton(y, x) * Co[c]       # anode lines, scattered
           + continuum(y, x) * B[c] + zero(y, x) * Z[c]          # bremsstrahlung, noise peak
           + sum_{i<=j} pileup_ij(y, x) * G_ij[c]                # sum peaks of main lines

and the stored counts are ``Poisson(lambda)`` (clipped to the dtype's range). Each map is
the *total area* (counts) of its component; since every template has unit total area,
``map * template.sum()`` are the counts on the energy axis.

Spatial design: smooth brush strokes (cubic Bezier curves with Gaussian cross-section and
varying pressure) and soft blobs per element; a paper background with a low level of Ca
and Fe (when those elements are present) with a smooth texture; isolated speckles of
``speckle_element`` (connected clusters of 1-9 pixels inside a 3 x 3 box, the brightest
pixel in the middle, separated by more than 4 pixels and kept 4 pixels from the edges,
centroid = intensity-weighted mean of the speckle's own counts); one single-pixel particle
in which all ``particle_elements`` are at their image maximum. Scatter is roughly uniform
with a mild smooth variation; Compton scatter drops (and Rayleigh rises) where heavy
elements (Z >= 37) are abundant. Pile-up: sum peaks of the strongest line of the (up to 6)
strongest elements, amplitude ``pileup * n_i * n_j / counts_per_pixel``.

Noise is drawn row by row from generators seeded with ``(seed, row)``, so a scan does not
depend on ``block_rows``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xraydb
from numpy.typing import DTypeLike
from scipy.ndimage import gaussian_filter

from maxrf import physics
from maxrf.errors import MissingFileError, OutputExistsError, ParameterError

__all__ = [
    "DEFAULT_ELEMENTS",
    "Truth",
    "expected_spectra",
    "load_truth",
    "make_scan",
    "synth_spectrum",
]

#: plausible elements of a drawing / painting; make_scan picks Ca, Fe and a random subset
DEFAULT_ELEMENTS: tuple[str, ...] = ("Ca", "Fe", "Cu", "Zn", "Pb", "K", "Ti", "Mn")
#: default pile-up coefficient (``pileup=True``)
DEFAULT_PILEUP: float = 0.004
#: default scatter shares (of the element counts / 0.7) for synth_spectrum
_SCATTER_SHARES: dict[str, float] = {
    "compton": 0.10,
    "rayleigh": 0.04,
    "continuum": 0.15,
    "zero": 0.01,
}
_SCATTER_NAMES: tuple[str, ...] = ("rayleigh", "compton", "continuum", "zero")
_MAX_PILEUP_ELEMENTS = 6
_TRUTH_VERSION = 1


# --------------------------------------------------------------------------- truth
@dataclass
class Truth:
    """Ground truth of a synthetic scan.

    Attributes
    ----------
    elements : list of str
        Elements present (by atomic number).
    maps : dict of str to numpy.ndarray
        ``(H, W)`` float32 expected counts of each element's lines (total area of its
        template, :func:`maxrf.physics.element_spectrum`).
    gain_keV, offset_keV : float
        Calibration: energy of channel ``i`` is ``offset_keV + gain_keV * i`` (keV).
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float
        Scattering angle (degrees).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV).
    speckle_centroids : numpy.ndarray
        ``(N, 2)`` float ``[row, col]`` centroids of the speckles.
    speckle_element : str or None
        Element of the speckles (``None`` without speckles).
    particle_pixel : tuple of int or None
        ``(row, col)`` of the single-pixel particle.
    particle_elements : tuple of str
        Elements of the particle.
    seed : int
        Random seed.
    shape : tuple of int
        ``(H, W, C)``.
    scatter_maps : dict of str to numpy.ndarray
        ``(H, W)`` float32 total areas (counts) of ``'rayleigh'``, ``'compton'``,
        ``'continuum'`` and ``'zero'``.
    pileup : float
        Pile-up coefficient (0 without pile-up).
    pileup_elements : list of str
        Elements whose main lines pile up.
    counts_per_pixel : float
        Requested mean counts per pixel.
    dtype : str
        Stored dtype.
    header_calibration : bool
        Whether the calibration was written into the ``.rpl`` header.
    speckle_sizes : numpy.ndarray
        ``(N,)`` pixels per speckle.
    rpl_path : str or None
        The header written.
    """

    elements: list[str]
    maps: dict[str, np.ndarray]
    gain_keV: float
    offset_keV: float
    anode: str
    tube_kv: float
    theta_deg: float
    fwhm_at_6keV: float
    energies: np.ndarray
    speckle_centroids: np.ndarray
    speckle_element: str | None
    particle_pixel: tuple[int, int] | None
    particle_elements: tuple[str, ...]
    seed: int
    shape: tuple[int, int, int]
    scatter_maps: dict[str, np.ndarray] = field(default_factory=dict)
    pileup: float = 0.0
    pileup_elements: list[str] = field(default_factory=list)
    counts_per_pixel: float = 0.0
    dtype: str = "uint16"
    header_calibration: bool = False
    speckle_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    rpl_path: str | None = None

    @property
    def calibration(self) -> tuple[float, float]:
        """``(gain_keV, offset_keV)``."""
        return (self.gain_keV, self.offset_keV)

    def channel(self, keV: float | np.ndarray) -> float | np.ndarray:
        """Fractional channel index of an energy (keV)."""
        out = (np.asarray(keV, dtype=float) - self.offset_keV) / self.gain_keV
        return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- helpers
def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    name = p.name
    for suffix in (".truth.json", ".truth.npz", ".rpl", ".raw"):
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)])
    return p


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


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ParameterError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


def _pileup_coefficient(pileup: bool | float) -> float:
    if pileup is True:
        return DEFAULT_PILEUP
    if pileup is False or pileup is None:
        return 0.0
    return _check_float("pileup", pileup, 0.0, 1.0)


def _main_line(element: str, tube_kv: float) -> tuple[float, float]:
    """(energy keV, share of the element's total area) of its strongest line."""
    lines = physics.element_lines(element, tube_kv)
    rel = np.array([ln.rel_intensity for ln in lines])
    k = int(np.argmax(rel))
    return lines[k].energy_keV, float(rel[k] / rel.sum())


# --------------------------------------------------------------------------- model
class _Model:
    """Templates and amplitude maps of a scan (shared by make_scan and expected_spectra)."""

    def __init__(
        self,
        energies: np.ndarray,
        elements: Sequence[str],
        *,
        anode: str,
        tube_kv: float,
        theta_deg: float,
        fwhm_at_6keV: float,
        pileup: float,
        pileup_elements: Sequence[str],
    ) -> None:
        self.energies = energies
        self.elements = list(elements)
        rows = [
            physics.element_spectrum(el, energies, tube_kv=tube_kv, fwhm_at_6keV=fwhm_at_6keV)
            for el in self.elements
        ]
        sc = physics.scatter_spectrum(
            energies, anode=anode, tube_kv=tube_kv, theta_deg=theta_deg, fwhm_at_6keV=fwhm_at_6keV
        )
        sc["zero"] = physics.zero_peak(energies, physics.noise_fwhm_keV(fwhm_at_6keV))
        rows += [sc[name] for name in _SCATTER_NAMES]
        self.pileup = float(pileup)
        self.pileup_elements = [
            el
            for el in (pileup_elements if pileup > 0 else [])
            if physics.element_lines(el, tube_kv)
        ]
        idx = [self.elements.index(el) for el in self.pileup_elements]
        main = [_main_line(el, tube_kv) for el in self.pileup_elements]
        pairs_i, pairs_j, centres, mult = [], [], [], []
        for a in range(len(idx)):
            for b in range(a, len(idx)):
                pairs_i.append(idx[a])
                pairs_j.append(idx[b])
                centres.append(main[a][0] + main[b][0])
                mult.append((1.0 if a == b else 2.0) * main[a][1] * main[b][1])
        self.pair_i = np.array(pairs_i, dtype=int)
        self.pair_j = np.array(pairs_j, dtype=int)
        self.pair_mult = np.array(mult)
        if centres:
            c = np.array(centres)
            rows += list(
                physics.gaussian_peaks(
                    energies, c, np.eye(c.size), physics.fwhm_keV(c, fwhm_at_6keV)
                )
            )
        self.templates = np.array(rows, dtype=float).reshape(len(rows), energies.size)
        self.n_base = len(self.elements) + len(_SCATTER_NAMES)

    def amplitudes(self, base: np.ndarray, counts_ref: float | np.ndarray) -> np.ndarray:
        """``(n_pixels, n_components)`` from ``(n_pixels, K + 4)`` element+scatter areas."""
        if self.pair_i.size == 0:
            return base
        ref = np.asarray(counts_ref, dtype=float)
        if ref.ndim == 1:
            ref = ref[:, None]
        pile = base[:, self.pair_i] * base[:, self.pair_j] * (self.pileup * self.pair_mult) / ref
        return np.concatenate([base, pile], axis=1)

    def expected(self, base: np.ndarray, counts_ref: float | np.ndarray) -> np.ndarray:
        lam = self.amplitudes(base, counts_ref) @ self.templates
        np.maximum(lam, 0.0, out=lam)
        return lam


def _model_from_truth(truth: Truth) -> _Model:
    return _Model(
        np.asarray(truth.energies, dtype=float),
        truth.elements,
        anode=truth.anode,
        tube_kv=truth.tube_kv,
        theta_deg=truth.theta_deg,
        fwhm_at_6keV=truth.fwhm_at_6keV,
        pileup=truth.pileup,
        pileup_elements=truth.pileup_elements,
    )


def _base_block(
    elements: Sequence[str],
    maps: Mapping[str, np.ndarray],
    scatter: Mapping[str, np.ndarray],
    rows: slice,
) -> np.ndarray:
    layers = [maps[el][rows] for el in elements] + [scatter[n][rows] for n in _SCATTER_NAMES]
    stack = np.stack(layers, axis=-1).astype(float)  # (r, W, K + 4)
    return stack.reshape(-1, stack.shape[-1])


def expected_spectra(truth: Truth, rows: slice | None = None) -> np.ndarray:
    """Noise-free expected counts of a synthetic scan, recomputed from its truth.

    Parameters
    ----------
    truth : Truth
        From :func:`make_scan` or :func:`load_truth`.
    rows : slice, optional
        Rows to compute (all by default; mind the memory for big scans).

    Returns
    -------
    numpy.ndarray
        ``(r, W, C)`` float64 expected counts (before Poisson noise and clipping).
    """
    rows = slice(None) if rows is None else rows
    model = _model_from_truth(truth)
    base = _base_block(truth.elements, truth.maps, truth.scatter_maps, rows)
    lam = model.expected(base, truth.counts_per_pixel)
    h = len(range(*rows.indices(truth.shape[0])))
    return lam.reshape(h, truth.shape[1], truth.shape[2])


# --------------------------------------------------------------------------- make_scan
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


def make_scan(
    path: str | os.PathLike,
    *,
    height: int = 64,
    width: int = 80,
    channels: int = 2048,
    seed: int = 0,
    elements: Iterable[str] | None = None,
    gain_keV: float | None = None,
    offset_keV: float | None = None,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float | None = None,
    counts_per_pixel: float = 3000,
    fwhm_at_6keV: float | None = None,
    dtype: DTypeLike = "uint16",
    header_calibration: bool = False,
    n_speckles: int = 8,
    speckle_element: str | None = "Fe",
    particle: bool = True,
    particle_elements: Sequence[str] = ("Cu", "Zn"),
    pileup: bool | float = True,
    block_rows: int | None = None,
    overwrite: bool = False,
) -> Truth:
    """Write a synthetic MA-XRF scan (ripple pair) with its ground truth, streaming.

    Parameters
    ----------
    path : str or os.PathLike
        Output path, with or without ``.rpl``; writes ``<stem>.rpl``, ``<stem>.raw``,
        ``<stem>.truth.npz`` and ``<stem>.truth.json``.
    height, width, channels : int
        Cube shape (pixels, pixels, channels).
    seed : int
        Random seed (>= 0); everything random derives from it.
    elements : iterable of str, optional
        Elements painted with strokes and blobs. Default: Ca, Fe and a random subset of
        K, Ti, Mn, Cu, Zn, Pb. The speckle and particle elements are added if missing
        (then present only in the speckles / the particle). Every element needs lines on
        the energy axis.
    gain_keV : float, optional
        keV per channel; default ``U(0.97, 1.03) * (tube_kv + 1.5) / channels``.
    offset_keV : float, optional
        Energy of channel 0 (keV), in [-1, 0.3]; default ``U(-1.0, -0.1)``.
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Tube anode.
    tube_kv : float
        Tube voltage (kV), 5..100.
    theta_deg : float, optional
        Scattering angle (degrees); default ``U(85, 115)``.
    counts_per_pixel : float
        Mean expected counts per pixel on the energy axis (before speckles / particle).
    fwhm_at_6keV : float, optional
        Detector FWHM (keV) at 5.9 keV; default ``U(0.130, 0.160)``.
    dtype : numpy dtype
        Stored type (``'uint16'`` default; counts above the type's maximum are clipped).
    header_calibration : bool
        Write the calibration into the header (Bruker keys); otherwise no calibration.
    n_speckles : int
        Number of speckles of ``speckle_element`` (0 for none).
    speckle_element : str or None
        Element of the speckles.
    particle : bool
        Add the single-pixel particle of ``particle_elements``.
    particle_elements : sequence of str
        Elements of the particle.
    pileup : bool or float
        Pile-up coefficient (``True``: 0.004, ``False``: none).
    block_rows : int, optional
        Rows per written block; default so that a block holds about 2**20 values.
    overwrite : bool
        Replace existing outputs; otherwise :class:`~maxrf.errors.OutputExistsError`.

    Returns
    -------
    Truth
        The ground truth (also saved beside the scan).

    Raises
    ------
    ParameterError
        Invalid option (e.g. no room for the speckles, an element without lines on the axis).
    OutputExistsError, OutputLocationError, DiskFullError
        The output cannot be written; nothing is left behind.
    """
    from maxrf.io.ripple import RippleWriter

    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    channels = _check_int("channels", channels, 16)
    seed = _check_int("seed", seed, 0)
    n_speckles = _check_int("n_speckles", n_speckles, 0)
    tube_kv = _check_float("tube_kv", tube_kv, 5.0, 100.0)
    counts = _check_float("counts_per_pixel", counts_per_pixel, 1e-6, 1e12)
    pile = _pileup_coefficient(pileup)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"dtype {dtype!r} is not a numpy dtype") from None
    if out_dtype.kind not in "uif" or out_dtype.itemsize not in (1, 2, 4, 8):
        raise ParameterError(f"dtype must be an integer or float type, got {dtype!r}")
    out_dtype = out_dtype.newbyteorder("=")
    if block_rows is None:
        block_rows = max(1, min(height, (1 << 20) // (width * channels)))
    block_rows = _check_int("block_rows", block_rows, 1)

    stem = _stem(path)
    truth_json = stem.with_name(stem.name + ".truth.json")
    truth_npz = stem.with_name(stem.name + ".truth.npz")
    if not overwrite:
        for p in (truth_json, truth_npz):
            if p.exists():
                raise OutputExistsError("already exists (pass overwrite=True to replace it)", p)

    rng = np.random.default_rng(seed)
    # draw every random instrument parameter first, so that passing one explicitly does
    # not change the rest of the scan
    r_gain, r_offset, r_theta, r_fwhm = (
        rng.uniform(0.97, 1.03),
        rng.uniform(-1.0, -0.1),
        rng.uniform(85.0, 115.0),
        rng.uniform(0.130, 0.160),
    )
    gain = r_gain * (tube_kv + 1.5) / channels if gain_keV is None else gain_keV
    gain = _check_float("gain_keV", gain, 1e-6, 10.0)
    if gain <= 0:
        raise ParameterError(f"gain_keV must be > 0, got {gain_keV!r}")
    offset = r_offset if offset_keV is None else _check_float("offset_keV", offset_keV, -1.0, 0.3)
    theta = r_theta if theta_deg is None else _check_float("theta_deg", theta_deg, 0.0, 180.0)
    fwhm6 = r_fwhm if fwhm_at_6keV is None else float(fwhm_at_6keV)
    physics.fwhm_keV(5.9, fwhm6)  # validates
    anode_sym = physics.normalize_element(anode)
    physics.anode_lines(anode_sym, tube_kv)  # validates
    energies = offset + gain * np.arange(channels)

    # ---- elements
    if elements is None:
        extra = [el for el in DEFAULT_ELEMENTS if el not in ("Ca", "Fe")]
        k = int(rng.integers(2, len(extra) + 1))
        chosen = rng.choice(len(extra), size=k, replace=False)
        painted = ["Ca", "Fe"] + [extra[i] for i in sorted(chosen)]
    else:
        if isinstance(elements, str):
            elements = [elements]
        painted = []
        for el in elements:
            sym = physics.normalize_element(el)
            if sym not in painted:
                painted.append(sym)
    speckle_el = None
    if n_speckles > 0 and speckle_element is not None:
        speckle_el = physics.normalize_element(speckle_element)
    part_els: tuple[str, ...] = ()
    if particle:
        part_els = tuple(dict.fromkeys(physics.normalize_element(e) for e in particle_elements))
        if not part_els:
            raise ParameterError("particle_elements is empty (pass particle=False for none)")
    all_els = list(dict.fromkeys(painted + ([speckle_el] if speckle_el else []) + list(part_els)))
    all_els.sort(key=xraydb.atomic_number)
    if not all_els:
        raise ParameterError("no elements: give at least one element")

    # ---- templates (validated on the axis)
    probe = {}
    for el in all_els:
        t = physics.element_spectrum(el, energies, tube_kv=tube_kv, fwhm_at_6keV=fwhm6)
        if t.sum() < 0.5:
            raise ParameterError(
                f"element {el} has no lines excited at {tube_kv} kV on the energy axis "
                f"{energies[0]:.2f}..{energies[-1]:.2f} keV"
            )
        probe[el] = t

    # ---- maps (counts, before global scaling)
    h, w = height, width
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
    scatter = {
        "rayleigh": shares["rayleigh"] * counts * variation * (1 + 0.3 * hn),
        "compton": shares["compton"] * counts * variation * (1 - 0.3 * hn),
        "continuum": shares["continuum"] * counts * variation * (1 - 0.15 * hn),
        "zero": np.full((h, w), shares["zero"] * counts),
    }

    pile_els = []
    if pile > 0:
        strength = {el: float(maps[el].mean()) for el in all_els}
        pile_els = sorted(all_els, key=lambda e: -strength[e])[:_MAX_PILEUP_ELEMENTS]
        pile_els = [el for el in all_els if el in pile_els]  # keep Z order
    model = _Model(
        energies,
        all_els,
        anode=anode_sym,
        tube_kv=tube_kv,
        theta_deg=theta,
        fwhm_at_6keV=fwhm6,
        pileup=pile,
        pileup_elements=pile_els,
    )
    on_axis = model.templates.sum(axis=1)
    # scale to the requested mean counts on the axis (without pile-up, a ~0.1 % term)
    total = sum(maps[el].mean() * on_axis[i] for i, el in enumerate(all_els))
    total += sum(
        scatter[n].mean() * on_axis[len(all_els) + i] for i, n in enumerate(_SCATTER_NAMES)
    )
    scale = counts / total
    for arr in list(maps.values()) + list(scatter.values()):
        arr *= scale

    # ---- particle, then speckles
    particle_pixel: tuple[int, int] | None = None
    if part_els:
        pts = _place_points(rng, 1, h, w, min(3, (min(h, w) - 1) // 2), 0.0, [], 0.0)
        if not pts:
            raise ParameterError(f"no room for the particle in a {h} x {w} scan")
        particle_pixel = pts[0]
        py, px = particle_pixel
        for el in part_els:
            m = maps[el]
            peak = max(1.5 * counts, 2.0 * float(m.max())) * rng.uniform(1.0, 1.3)
            m[py, px] = max(m[py, px], peak)
    centroids: list[tuple[float, float]] = []
    sizes: list[int] = []
    if speckle_el is not None:
        seeds = _place_points(
            rng, n_speckles, h, w, 4, 6.0, [particle_pixel] if particle_pixel else [], 6.0
        )
        if len(seeds) < n_speckles:
            raise ParameterError(
                f"no room for {n_speckles} speckles in a {h} x {w} scan "
                "(they need 4 pixels from the edges and 6 between them)"
            )
        m = maps[speckle_el]
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

    maps32 = {el: maps[el].astype(np.float32) for el in all_els}
    scatter32 = {n: scatter[n].astype(np.float32) for n in _SCATTER_NAMES}
    del maps, scatter, heavy, hn, variation, texture

    # ---- stream the counts
    limit = np.iinfo(out_dtype).max if out_dtype.kind in "ui" else None
    calibration = (gain, offset) if header_calibration else None
    workers = max(1, min(4, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        RippleWriter(
            stem.with_name(stem.name + ".rpl"),
            (h, w, channels),
            out_dtype,
            calibration=calibration,
            overwrite=overwrite,
        ) as writer,
    ):
        for r0 in range(0, h, block_rows):
            r1 = min(h, r0 + block_rows)
            base = _base_block(all_els, maps32, scatter32, slice(r0, r1))
            lam = model.expected(base, counts).reshape(r1 - r0, w, channels)
            block = np.empty((r1 - r0, w, channels), dtype=out_dtype)

            def draw(i: int, lam=lam, block=block, r0=r0) -> None:
                cnt = np.random.default_rng([seed, 1, r0 + i]).poisson(lam[i])
                if limit is not None:
                    np.minimum(cnt, limit, out=cnt)
                block[i] = cnt

            # numpy releases the GIL while sampling: rows in parallel threads
            list(pool.map(draw, range(r1 - r0)))
            del lam
            writer.write_rows(r0, block)
        rpl_path, raw_path = writer.rpl_path, writer.raw_path

    truth = Truth(
        elements=all_els,
        maps=maps32,
        gain_keV=float(gain),
        offset_keV=float(offset),
        anode=anode_sym,
        tube_kv=float(tube_kv),
        theta_deg=float(theta),
        fwhm_at_6keV=float(fwhm6),
        energies=energies,
        speckle_centroids=np.array(centroids, dtype=float).reshape(-1, 2),
        speckle_element=speckle_el,
        particle_pixel=particle_pixel,
        particle_elements=part_els,
        seed=seed,
        shape=(h, w, channels),
        scatter_maps=scatter32,
        pileup=pile,
        pileup_elements=pile_els,
        counts_per_pixel=float(counts),
        dtype=out_dtype.name,
        header_calibration=bool(header_calibration),
        speckle_sizes=np.array(sizes, dtype=int),
        rpl_path=str(rpl_path),
    )
    try:
        _save_truth(truth, truth_json, truth_npz)
    except BaseException:
        for p in (Path(rpl_path), Path(raw_path), truth_json, truth_npz):
            try:
                p.unlink()
            except OSError:
                pass
        raise
    return truth


def _save_truth(truth: Truth, json_path: Path, npz_path: Path) -> None:
    arrays = {f"map_{el}": truth.maps[el] for el in truth.elements}
    arrays.update({f"scatter_{n}": truth.scatter_maps[n] for n in truth.scatter_maps})
    arrays["energies"] = np.asarray(truth.energies)
    arrays["speckle_centroids"] = truth.speckle_centroids
    arrays["speckle_sizes"] = truth.speckle_sizes
    meta = {
        "version": _TRUTH_VERSION,
        "elements": truth.elements,
        "gain_keV": truth.gain_keV,
        "offset_keV": truth.offset_keV,
        "anode": truth.anode,
        "tube_kv": truth.tube_kv,
        "theta_deg": truth.theta_deg,
        "fwhm_at_6keV": truth.fwhm_at_6keV,
        "speckle_element": truth.speckle_element,
        "speckle_centroids": truth.speckle_centroids.tolist(),
        "particle_pixel": list(truth.particle_pixel) if truth.particle_pixel else None,
        "particle_elements": list(truth.particle_elements),
        "seed": truth.seed,
        "shape": list(truth.shape),
        "pileup": truth.pileup,
        "pileup_elements": truth.pileup_elements,
        "counts_per_pixel": truth.counts_per_pixel,
        "dtype": truth.dtype,
        "header_calibration": truth.header_calibration,
        "rpl_path": truth.rpl_path,
    }
    tmp_npz = npz_path.with_name(f".{npz_path.name}.{os.getpid()}.tmp.npz")
    tmp_json = json_path.with_name(f".{json_path.name}.{os.getpid()}.tmp")
    try:
        np.savez(tmp_npz, **arrays)
        tmp_json.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_npz, npz_path)
        os.replace(tmp_json, json_path)
    finally:
        for p in (tmp_npz, tmp_json):
            try:
                p.unlink()
            except OSError:
                pass


def load_truth(path: str | os.PathLike) -> Truth:
    """Read the ground truth written by :func:`make_scan`.

    Parameters
    ----------
    path : str or os.PathLike
        The scan's ``.rpl`` / ``.raw``, its stem, or a ``.truth.json`` / ``.truth.npz``.

    Returns
    -------
    Truth

    Raises
    ------
    MissingFileError
        The truth files are missing.
    """
    stem = _stem(path)
    json_path = stem.with_name(stem.name + ".truth.json")
    npz_path = stem.with_name(stem.name + ".truth.npz")
    for p in (json_path, npz_path):
        if not p.is_file():
            raise MissingFileError("synthetic-scan truth file not found", p)
    meta = json.loads(json_path.read_text())
    with np.load(npz_path) as z:
        arrays = {k: z[k] for k in z.files}
    elements = list(meta["elements"])
    return Truth(
        elements=elements,
        maps={el: arrays[f"map_{el}"] for el in elements},
        gain_keV=float(meta["gain_keV"]),
        offset_keV=float(meta["offset_keV"]),
        anode=meta["anode"],
        tube_kv=float(meta["tube_kv"]),
        theta_deg=float(meta["theta_deg"]),
        fwhm_at_6keV=float(meta["fwhm_at_6keV"]),
        energies=arrays["energies"],
        speckle_centroids=arrays["speckle_centroids"].reshape(-1, 2),
        speckle_element=meta["speckle_element"],
        particle_pixel=tuple(meta["particle_pixel"]) if meta["particle_pixel"] else None,
        particle_elements=tuple(meta["particle_elements"]),
        seed=int(meta["seed"]),
        shape=tuple(meta["shape"]),
        scatter_maps={
            n: arrays[f"scatter_{n}"] for n in _SCATTER_NAMES if f"scatter_{n}" in arrays
        },
        pileup=float(meta["pileup"]),
        pileup_elements=list(meta["pileup_elements"]),
        counts_per_pixel=float(meta["counts_per_pixel"]),
        dtype=meta["dtype"],
        header_calibration=bool(meta["header_calibration"]),
        speckle_sizes=arrays["speckle_sizes"],
        rpl_path=meta.get("rpl_path"),
    )


# --------------------------------------------------------------------------- one spectrum
def synth_spectrum(
    amplitudes: Mapping[str, float],
    energies: np.ndarray | Sequence[float],
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
    scatter: float | Mapping[str, float] | None = None,
    pileup: bool | float = False,
    rng: np.random.Generator | int | None = None,
    poisson: bool = True,
) -> np.ndarray:
    """One synthetic point spectrum (for identification tests on single spectra).

    Parameters
    ----------
    amplitudes : mapping of str to float
        Element -> total counts of its lines (area of its template).
    energies : array_like
        ``(C,)`` channel energies (keV).
    anode, tube_kv, theta_deg, fwhm_at_6keV
        Instrument, as in :func:`make_scan`.
    scatter : float or mapping, optional
        ``None``: scatter in the default proportions (Compton 10 %, Rayleigh 4 %,
        continuum 15 %, zero peak 1 % of ``sum(amplitudes) / 0.7``); a number: total
        scatter counts in those proportions; a mapping: counts per component
        (``'rayleigh'``, ``'compton'``, ``'continuum'``, ``'zero'``); ``0``: none.
    pileup : bool or float
        Pile-up coefficient (``True``: 0.004), relative to the spectrum's total counts.
    rng : numpy.random.Generator or int, optional
        Noise source (or a seed).
    poisson : bool
        Draw Poisson counts; otherwise return the expected counts.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts (float64).
    """
    e = np.asarray(energies, dtype=float)
    els = [physics.normalize_element(el) for el in amplitudes]
    amps = np.array([float(amplitudes[k]) for k in amplitudes])
    if amps.size and not (np.all(np.isfinite(amps)) and np.all(amps >= 0)):
        raise ParameterError(f"amplitudes must be finite counts >= 0, got {dict(amplitudes)!r}")
    if scatter is None:
        total = amps.sum() / 0.7
        sc = {n: _SCATTER_SHARES[n] * total for n in _SCATTER_NAMES}
    elif isinstance(scatter, Mapping):
        unknown = set(scatter) - set(_SCATTER_NAMES)
        if unknown:
            raise ParameterError(
                f"scatter keys must be among {', '.join(_SCATTER_NAMES)}; got {sorted(unknown)}"
            )
        sc = {n: float(scatter.get(n, 0.0)) for n in _SCATTER_NAMES}
    else:
        total = _check_float("scatter", scatter, 0.0, 1e15)
        norm = sum(_SCATTER_SHARES.values())
        sc = {n: _SCATTER_SHARES[n] / norm * total for n in _SCATTER_NAMES}
    pile = _pileup_coefficient(pileup)
    model = _Model(
        e,
        els,
        anode=physics.normalize_element(anode),
        tube_kv=tube_kv,
        theta_deg=theta_deg,
        fwhm_at_6keV=fwhm_at_6keV,
        pileup=pile,
        pileup_elements=[els[i] for i in np.argsort(-amps)[:_MAX_PILEUP_ELEMENTS]]
        if pile > 0
        else [],
    )
    base = np.concatenate([amps, [sc[n] for n in _SCATTER_NAMES]])[None, :]
    ref = max(float(base.sum()), 1e-12)
    lam = model.expected(base, ref)[0]
    if not poisson:
        return lam
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.poisson(lam).astype(float)
