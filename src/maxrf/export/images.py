"""Map images that travel: pixel-exact PNGs, TIFFs with their metadata, RGB composites.

* PNG: one scan pixel is one image pixel (or an ``upscale`` x ``upscale`` square), no
  axes or margins, so it overlays a photograph or another map 1:1; a colour map (an
  element's maps use the report's element colours) and limits (``limits`` or
  ``percentiles``); the pixel size, when known, is the PNG's resolution (pHYs), the
  limits and units are text chunks.
* TIFF: float32 values, ImageJ-readable (``tifffile.TiffFile(p).imagej_metadata``): the
  element, line or keV window, units, energy calibration, display range, and the pixel
  size as the image resolution (mm).
* RGB composite of up to three maps (red, green, blue), each scaled to its own limits.

Colour tables come from :func:`maxrf.plot.colors.lut` (matplotlib stays in plot/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import ParameterError

DEFAULT_PERCENTILES = (0.5, 99.5)
"""Colour limits of an exported image: these percentiles of its finite values."""

OVERVIEW_SIDE = 512
"""Largest side (pixels) of a map's panel in the overview sheet (maps are strided down)."""


def color_limits(img: np.ndarray, limits: Sequence[float] | None = None,
                 percentiles: Sequence[float] | None = None) -> tuple[float, float]:
    """``(low, high)`` display limits: ``limits`` as given, else ``percentiles`` of the finite
    values (default :data:`DEFAULT_PERCENTILES`); ``high > low`` always."""
    if limits is not None:
        lo, hi = (float(v) for v in limits)
    else:
        finite = img[np.isfinite(img)]
        if not finite.size:
            return 0.0, 1.0
        p = DEFAULT_PERCENTILES if percentiles is None else percentiles
        lo, hi = (float(v) for v in np.percentile(finite, p))
    if not hi > lo:
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    return lo, hi


def to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values scaled to 0..255 between ``lo`` and ``hi`` (clipped); NaN -> 0."""
    scaled = (np.asarray(img, dtype=np.float64) - lo) / (hi - lo)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _upscaled(a: np.ndarray, upscale: int) -> np.ndarray:
    if int(upscale) != upscale or upscale < 1:
        raise ParameterError(f"upscale must be a whole number >= 1, got {upscale}")
    return a if upscale == 1 else np.repeat(np.repeat(a, upscale, axis=0), upscale, axis=1)


def _save_png(path: Path, rgb: np.ndarray, info: Mapping[str, Any], pixel_size_mm: float | None,
              upscale: int) -> Path:
    from PIL import Image, PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(str(key), json.dumps(value) if not isinstance(value, str) else value)
    kwargs: dict[str, Any] = {"pnginfo": meta}
    if pixel_size_mm:
        dpi = 25.4 / (pixel_size_mm / upscale)
        kwargs["dpi"] = (dpi, dpi)
    Image.fromarray(rgb).save(path, format="PNG", **kwargs)
    return path


def write_png(path: str | os.PathLike, img: Any, *, cmap: str = "viridis",
              limits: Sequence[float] | None = None, percentiles: Sequence[float] | None = None,
              upscale: int = 1, pixel_size_mm: float | None = None,
              info: Mapping[str, Any] | None = None) -> Path:
    """Write a map as a pixel-exact colour PNG.

    Parameters
    ----------
    path : path
        The ``.png`` file.
    img : array_like
        ``(H, W)`` map; the PNG is ``(H * upscale, W * upscale)`` pixels.
    cmap : str
        Matplotlib colour map name or an element symbol (the report's element colours).
    limits, percentiles : (float, float), optional
        Display limits in map units, or percentiles of the map (default 0.5, 99.5).
    upscale : int
        Each scan pixel becomes an ``upscale`` x ``upscale`` square.
    pixel_size_mm : float, optional
        Scan pixel size (mm): written as the PNG's resolution.
    info : mapping, optional
        Extra text chunks (element, units...).
    """
    from maxrf.plot.colors import lut

    a = np.asarray(img, dtype=np.float32)
    lo, hi = color_limits(a, limits, percentiles)
    rgb = lut(cmap)[to_uint8(a, lo, hi)]
    meta = {"limits": [lo, hi], "cmap": cmap, "software": "maxrf", **dict(info or {})}
    return _save_png(Path(path), _upscaled(rgb, upscale), meta, pixel_size_mm, upscale)


def write_tiff(path: str | os.PathLike, img: Any, *, units: str, element: str | None = None,
               line: str | None = None, window_keV: Sequence[float] | None = None,
               calibration: Mapping[str, Any] | None = None, pixel_size_mm: float | None = None,
               limits: Sequence[float] | None = None, info: Mapping[str, Any] | None = None
               ) -> Path:
    """Write a map as a float32 ImageJ TIFF with its metadata.

    ImageJ shows the pixel size (``unit`` mm, resolution) and display range; the other
    fields (element, line, window_kev (keV), units, calibration) are in the ImageJ metadata
    (``tifffile.TiffFile(path).imagej_metadata``) and, as JSON, in ``maxrf``.
    """
    import tifffile

    a = np.asarray(img, dtype=np.float32)
    lo, hi = color_limits(a, limits, None)
    meta: dict[str, Any] = {"units": units, "min": lo, "max": hi}
    if element:
        meta["element"] = element
    if line:
        meta["line"] = line
    if window_keV is not None:
        meta["window_kev"] = f"{float(window_keV[0]):.4f}-{float(window_keV[1]):.4f}"
    if calibration:
        meta["calibration"] = (f"E = {float(calibration['offset_keV']):.6f} + "
                               f"{float(calibration['gain_keV']):.8f} x channel keV")
    meta.update({k: v for k, v in dict(info or {}).items() if isinstance(v, (str, int, float))})
    meta["maxrf"] = json.dumps({k: v for k, v in meta.items()}, default=str)
    kwargs: dict[str, Any] = {}
    if pixel_size_mm:
        meta["unit"] = "mm"
        kwargs["resolution"] = (1.0 / pixel_size_mm, 1.0 / pixel_size_mm)
    tifffile.imwrite(Path(path), a, imagej=True, metadata=meta, **kwargs)
    return Path(path)


def rgb_composite(maps: Sequence[Any], *, limits: Sequence[Sequence[float] | None] | None = None,
                  percentiles: Sequence[float] | None = None) -> np.ndarray:
    """Up to three maps as the red, green and blue channels of one ``(H, W, 3)`` uint8 image,
    each scaled to its own limits (a missing third map leaves blue black)."""
    if not 1 <= len(maps) <= 3:
        raise ParameterError(f"an RGB composite takes 1 to 3 maps, got {len(maps)}")
    arrays = [np.asarray(m, dtype=np.float32) for m in maps]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
        raise ParameterError("the maps of an RGB composite must be 2-D and of one shape")
    out = np.zeros((*arrays[0].shape, 3), dtype=np.uint8)
    for i, a in enumerate(arrays):
        lim = None if limits is None else limits[i]
        out[..., i] = to_uint8(a, *color_limits(a, lim, percentiles))
    return out


def write_rgb(path: str | os.PathLike, maps: Sequence[Any], names: Sequence[str], *,
              percentiles: Sequence[float] | None = None, upscale: int = 1,
              pixel_size_mm: float | None = None) -> Path:
    """Write :func:`rgb_composite` of ``maps`` as a pixel-exact PNG (names in its text)."""
    rgb = rgb_composite(maps, percentiles=percentiles)
    info = {"red": names[0], "green": names[1] if len(names) > 1 else "",
            "blue": names[2] if len(names) > 2 else "", "software": "maxrf"}
    return _save_png(Path(path), _upscaled(rgb, upscale), info, pixel_size_mm, upscale)


def header_pixel_size_mm(ds: Any) -> float | None:
    """The scan's pixel size (mm) from its header (rosettasciio ``width-scale`` with
    ``width-units`` mm/um/µm/cm), or None."""
    header = dict(getattr(ds, "metadata", {}).get("header", {}))
    for key in ("width-scale", "pixel-size", "pixelsize"):
        if key in header:
            try:
                value = float(str(header[key]).replace(",", "."))
            except ValueError:
                return None
            unit = str(header.get("width-units", header.get("pixel-size-units", "mm"))).strip().lower()
            factor = {"mm": 1.0, "um": 1e-3, "µm": 1e-3, "micron": 1e-3, "cm": 10.0, "m": 1e3}.get(unit)
            return value * factor if factor and value > 0 else None
    return None


def export_maps(maps: Any, labels: list[str], titles: list[str], out: Path, formats: list[str],
                *, units: str, overview: str | None, cmap: str | None = None,
                elements: Sequence[str | None] | None = None,
                windows_keV: Sequence[Sequence[float] | None] | None = None,
                limits: Sequence[float] | None = None, percentiles: Sequence[float] | None = None,
                upscale: int = 1, pixel_size_mm: float | None = None,
                calibration: Mapping[str, Any] | None = None) -> list[Path]:
    """Write one TIFF and/or pixel-exact PNG per map, and an overview sheet PNG.

    ``maps`` is anything indexable map by map (a ``(k, H, W)`` array, or the stored
    layer's read-on-demand view): each map is read once and dropped, and the overview
    sheet keeps only strided thumbnails (at most :data:`OVERVIEW_SIDE` pixels a side), so
    memory stays one map whatever ``k``. An element's PNG uses the element's colours
    unless ``cmap`` is given. Returns the written paths.
    """
    from maxrf.maps import histeq

    written: list[Path] = []
    thumbs: list[np.ndarray] = []
    for i, (label, title) in enumerate(zip(labels, titles)):
        img = np.asarray(maps[i], dtype=np.float32)
        element = elements[i] if elements else None
        window = windows_keV[i] if windows_keV else None
        if overview and "png" in formats:
            step = max(1, -(-max(img.shape) // OVERVIEW_SIDE))
            thumbs.append(histeq(img[::step, ::step]))
        if "tiff" in formats:
            written.append(write_tiff(out / f"{label}.tiff", img, units=units, element=element,
                                      window_keV=window, calibration=calibration,
                                      pixel_size_mm=pixel_size_mm, info={"title": title}))
        if "png" in formats:
            written.append(write_png(out / f"{label}.png", img, cmap=cmap or element or "viridis",
                                     limits=limits, percentiles=percentiles, upscale=upscale,
                                     pixel_size_mm=pixel_size_mm,
                                     info={"title": title, "units": units}))
    if thumbs:
        from maxrf.plot.sheet import save_sheet

        written.append(save_sheet(thumbs, titles, out / f"{overview}.png"))
    return written
