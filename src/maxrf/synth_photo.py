"""Synthetic photographs of synthetic scans, with a known warp: the truth for registration.

:func:`make_photo` paints the truth maps of a synthetic scan (:func:`maxrf.synth.make_scan`)
as pigments on paper and photographs them: each element gets a pigment colour (an
absorbance per RGB channel, Beer-Lambert), the paper a smooth texture and fibres finer
than a scan pixel, the artwork continues a little beyond the scanned area and lies on a
dark table, a grey card (white, 18 % grey and black patches) sits in the margin, the light
falls off across the picture, and the image gets sensor noise and JPEG compression.

Geometry: a homography ``matrix`` maps scan pixel ``(col, row, 1)`` to photo pixel
``(x, y, w)`` (pixel centres at integers in both). It is a similarity (scale 2-6 photo
pixels per scan pixel, rotation up to +-5 degrees) with a slight anisotropy and a slight
perspective (the scale varies by a few per cent across the scan), placed so that the photo
shows about ``margin`` of the scanned area's size around it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, spline_filter, zoom

from maxrf.errors import ParameterError

__all__ = ["PIGMENTS", "PhotoTruth", "make_photo", "random_homography", "render_photo"]

#: absorbance (R, G, B) of a full-strength layer of each element's pigment
PIGMENTS: dict[str, tuple[float, float, float]] = {
    "Fe": (0.35, 0.85, 1.25),   # iron-gall ink / ochre: brown
    "Cu": (1.10, 0.25, 0.70),   # verdigris / malachite: green
    "Pb": (0.25, 0.30, 0.35),   # lead white over a dark ground: greyish
    "Ca": (0.08, 0.10, 0.14),   # chalk: faint
    "Zn": (0.15, 0.12, 0.05),
    "K": (0.30, 0.30, 0.10),
    "Ti": (0.05, 0.05, 0.08),
    "Mn": (0.70, 0.75, 0.80),   # manganese black
    "Hg": (0.05, 1.20, 1.10),   # vermilion: red
    "Co": (1.10, 0.80, 0.10),   # smalt: blue
}
_DEFAULT_PIGMENT = (0.5, 0.5, 0.5)
_PAPER = np.array([0.93, 0.90, 0.82], dtype=np.float32)
_TABLE = np.array([0.22, 0.20, 0.19], dtype=np.float32)


@dataclass
class PhotoTruth:
    """Ground truth of a synthetic photograph.

    Attributes
    ----------
    path : str
        The image written.
    matrix : numpy.ndarray
        ``(3, 3)`` homography scan ``(col, row, 1)`` -> photo ``(x, y, w)``.
    size : tuple of int
        ``(width, height)`` of the photograph (pixels).
    scale : float
        Photo pixels per scan pixel at the scan centre.
    rotation_deg : float
        Rotation (degrees).
    """

    path: str
    matrix: np.ndarray
    size: tuple[int, int]
    scale: float
    rotation_deg: float


def random_homography(
    rng: np.random.Generator,
    scan_shape: tuple[int, int],
    *,
    scale: float | tuple[float, float] = (2.0, 6.0),
    max_rotation_deg: float = 5.0,
    perspective: float = 0.03,
    margin: float = 0.2,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, tuple[int, int], float, float]:
    """A random scan -> photo homography and the photo size that shows ``margin`` around the scan.

    Parameters
    ----------
    rng : numpy.random.Generator
    scan_shape : tuple of int
        ``(H, W)`` of the scan (pixels).
    scale : float or (float, float)
        Photo pixels per scan pixel, or a range drawn log-uniformly.
    max_rotation_deg : float
        Rotation drawn in +-this (degrees).
    perspective : float
        Relative change of scale from the scan centre to its edge (a keystone).
    margin : float
        Share of the scanned area's extent shown on each side.
    size : tuple of int, optional
        ``(width, height)`` of the photo; default from the scale and margin. With a size
        given, ``scale`` is chosen so the scan fits with ``margin`` (``scale`` ignored).

    Returns
    -------
    matrix : numpy.ndarray
    size : tuple of int
    scale : float
    rotation_deg : float
    """
    h, w = scan_shape
    rot = float(rng.uniform(-max_rotation_deg, max_rotation_deg))
    if size is not None:
        s = min(size[0] / (w * (1 + 2 * margin)), size[1] / (h * (1 + 2 * margin))) / 1.1
    elif isinstance(scale, tuple):
        s = float(math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1]))))
    else:
        s = float(scale)
    aniso = float(rng.uniform(-0.02, 0.02))
    th = math.radians(rot)
    a = s * np.array([[math.cos(th) * (1 + aniso), -math.sin(th)],
                      [math.sin(th), math.cos(th) * (1 - aniso)]])
    direction = rng.uniform(0, 2 * math.pi)
    p = perspective * np.array([math.cos(direction) / (w / 2), math.sin(direction) / (h / 2)])
    cx, cy = (w - 1) / 2, (h - 1) / 2
    centred = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=float)
    m = np.eye(3)
    m[:2, :2] = a
    m[2, :2] = p
    m = m @ centred
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]]).T
    pc = m @ corners
    pc = pc[:2] / pc[2]
    lo, hi = pc.min(axis=1), pc.max(axis=1)
    ext = hi - lo
    if size is None:
        size = (int(math.ceil(ext[0] * (1 + 2 * margin))), int(math.ceil(ext[1] * (1 + 2 * margin))))
    # place the scan with the given margin, jittered by up to a third of it
    room = np.array(size, dtype=float) - ext
    jitter = rng.uniform(-1, 1, 2) * room / 6
    shift = room / 2 + jitter - lo - 0.5
    t = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]])
    return t @ m, (int(size[0]), int(size[1])), s, rot


def _pigment_layers(maps: Mapping[str, np.ndarray], rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per element: strength map (0..~1, spline-prefiltered) and RGB absorbance."""
    layers, colours = [], []
    for el, m in maps.items():
        m = np.asarray(m, dtype=np.float32)
        top = float(np.percentile(m, 99.5)) or 1.0
        layers.append(spline_filter(np.clip(m / top, 0, 1.5) * rng.uniform(0.7, 1.0), order=3))
        colours.append(PIGMENTS.get(el, _DEFAULT_PIGMENT))
    return np.stack(layers), np.asarray(colours, dtype=np.float32)


def render_photo(
    maps: Mapping[str, np.ndarray],
    matrix: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    band_rows: int = 512,
    card_over_scan: float = 0.0,
) -> np.ndarray:
    """Render the photograph as ``(height, width, 3)`` uint8 (row bands: bounded memory).

    Parameters
    ----------
    maps : mapping of str to numpy.ndarray
        ``(H, W)`` element maps (any units; each is scaled by its 99.5th percentile).
    matrix : numpy.ndarray
        Scan -> photo homography.
    size : tuple of int
        ``(width, height)``.
    rng : numpy.random.Generator
    band_rows : int
        Photo rows rendered at a time.
    card_over_scan : float
        Share of the scanned area's width (from its left edge) that the grey card hides;
        0 leaves the card in the margin (where it may still touch a rotated scan's corner).
    """
    if not maps:
        raise ParameterError("render_photo needs at least one map")
    layers, absorb = _pigment_layers(maps, rng)
    hs, ws = layers.shape[1:]
    width, height = size
    inv = np.linalg.inv(matrix)
    # the artwork continues 10 % beyond the scan; its texture there is a reflection, faded
    pad = 0.10
    paper_tex = gaussian_filter(rng.normal(0, 1, (64, 64)), 3)
    paper_tex = zoom(paper_tex / (paper_tex.std() + 1e-9), (height / 64, width / 64), order=1)
    paper_tex = paper_tex[:height, :width]
    card = _grey_card(size, matrix, (hs, ws), rng, card_over_scan)
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for y0 in range(0, height, band_rows):
        ys = np.arange(y0, min(height, y0 + band_rows))
        yy, xx = np.meshgrid(ys, np.arange(width), indexing="ij")
        q = inv @ np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
        col, row = q[0] / q[2], q[1] / q[2]
        dens = np.zeros((3, col.size), dtype=np.float32)
        for k in range(layers.shape[0]):
            v = map_coordinates(layers[k], [row, col], order=3, mode="mirror", prefilter=False)
            dens += absorb[k][:, None] * np.clip(v, 0, None)[None, :]
        # fade beyond the scanned area
        dx = np.maximum(np.maximum(-0.5 - col, col - (ws - 0.5)), 0) / (pad * ws)
        dy = np.maximum(np.maximum(-0.5 - row, row - (hs - 0.5)), 0) / (pad * hs)
        d = np.maximum(dx, dy)
        fade = np.clip(1 - d, 0, 1).astype(np.float32)
        on_paper = d <= 1.0
        fibres = rng.normal(0, 0.015, col.size).astype(np.float32)
        rgb = _PAPER[:, None] * (1 + 0.02 * paper_tex[ys].ravel() + fibres)[None, :] * np.exp(-dens * fade)
        rgb = np.where(on_paper[None, :], rgb, _TABLE[:, None] * (1 + 0.05 * paper_tex[ys].ravel()))
        band_card = card[ys].reshape(-1)
        rgb = np.where(band_card[None, :] >= 0, band_card[None, :], rgb)
        light = 1 + gx * (xx.ravel() / width - 0.5) + gy * (yy.ravel() / height - 0.5)
        rgb = rgb * light[None, :] + rng.normal(0, 0.01, rgb.shape)
        rgb = rgb.T.reshape(len(ys), width, 3)
        out[ys[0]: ys[-1] + 1] = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def _grey_card(size: tuple[int, int], matrix: np.ndarray, scan_shape: tuple[int, int],
               rng: np.random.Generator, over_scan: float = 0.0) -> np.ndarray:
    """``(height, width)`` float32: card grey level where the card is, -1 elsewhere.

    ``over_scan`` > 0 moves the card right so that it hides that share of the scanned
    area's width (an occlusion: a card, label or frame over part of the scan).
    """
    width, height = size
    card = np.full((height, width), -1.0, dtype=np.float32)
    hs, ws = scan_shape
    corners = np.array([[-0.5, -0.5, 1], [ws - 0.5, hs - 0.5, 1]]).T
    pc = matrix @ corners
    pc = pc[:2] / pc[2]
    top = int(max(0, min(pc[1]) * 0.15))
    left_room = int(min(pc[0]))
    cw, ch = max(4, int(left_room * 0.6)), max(6, int(height * 0.3))
    if left_room < 8:
        return card
    x0 = int(rng.uniform(0.05, 0.3) * left_room)
    y0 = top + int(rng.uniform(0.1, 0.5) * height)
    if over_scan > 0:
        four = matrix @ np.array([[-0.5, -0.5, 1], [ws - 0.5, -0.5, 1], [ws - 0.5, hs - 0.5, 1],
                                  [-0.5, hs - 0.5, 1]]).T
        xs = four[0] / four[2]
        x0 = max(0, int(xs.min() + over_scan * (xs.max() - xs.min())) - cw)
    y1 = min(height, y0 + ch)
    levels = (0.92, 0.46, 0.06)
    for i, lev in enumerate(levels):
        a = y0 + (y1 - y0) * i // 3
        b = y0 + (y1 - y0) * (i + 1) // 3
        card[a:b, x0: x0 + cw] = lev
    return card


def make_photo(
    maps: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    seed: int = 0,
    *,
    scale: float | tuple[float, float] = (2.0, 6.0),
    max_rotation_deg: float = 5.0,
    perspective: float = 0.03,
    margin: float = 0.2,
    size: tuple[int, int] | None = None,
    quality: int = 85,
    card_over_scan: float = 0.0,
) -> PhotoTruth:
    """Write a synthetic photograph of the artwork whose element maps are ``maps``.

    Parameters
    ----------
    maps : mapping of str to numpy.ndarray
        ``(H, W)`` truth maps (e.g. ``Truth.maps`` of :func:`maxrf.synth.make_scan`).
    path : str or os.PathLike
        Output image; ``.jpg``/``.jpeg`` is JPEG at ``quality``, ``.png`` / ``.tif`` lossless
        (a ``.tif`` is written as 16-bit).
    seed : int
        Random seed of the warp, pigments, light and noise.
    scale, max_rotation_deg, perspective, margin, size
        See :func:`random_homography`.
    quality : int
        JPEG quality.
    card_over_scan : float
        Share of the scan's width the grey card hides (see :func:`render_photo`).

    Returns
    -------
    PhotoTruth
    """
    maps = {k: np.asarray(v) for k, v in maps.items()}
    if not maps:
        raise ParameterError("make_photo needs at least one map")
    shape = next(iter(maps.values())).shape
    rng = np.random.default_rng([int(seed), 0x9407])
    matrix, size, s, rot = random_homography(
        rng, shape, scale=scale, max_rotation_deg=max_rotation_deg, perspective=perspective,
        margin=margin, size=size)
    img = render_photo(maps, matrix, size, rng, card_over_scan=card_over_scan)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(p, img.astype(np.uint16) * 257, rowsperstrip=64)
    else:
        from PIL import Image

        kw = {"quality": int(quality)} if suffix in (".jpg", ".jpeg") else {}
        Image.fromarray(img).save(p, **kw)
    return PhotoTruth(path=str(p), matrix=matrix, size=size, scale=s, rotation_deg=rot)
