"""Element maps on the photograph: warped overlays, RGB composites and mosaics of several scans.

Everything is resampled on the photo's pixel grid (optionally reduced by an integer
``factor``: output pixel ``(i, j)`` is centred on photo pixel ``(factor*j + (factor-1)/2,
factor*i + (factor-1)/2)``), through the inverse of the registration's homography, so
each output pixel shows the scan pixel beneath it (nearest neighbour: the maps' pixels stay
as measured; pixels outside the scan are NaN / transparent). Work proceeds in bands of
output rows, so an 8000 x 6000 photo needs only a band of coordinates at a time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates

from maxrf.errors import OutputLocationError, ParameterError
from maxrf.registration.result import Registration

__all__ = ["composite_rgba", "export_overlays", "mosaic", "overlay_rgba", "warp_to_photo"]

#: overlay colours of single maps (cycled)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))
_BAND = 256


def output_factor(size: tuple[int, int], max_side: int | None) -> int:
    """Integer reduction of the photo grid so its longest side is at most ``max_side``."""
    return 1 if not max_side else max(1, math.ceil(max(size) / int(max_side)))


def warp_to_photo(
    image: np.ndarray,
    matrix: np.ndarray,
    size: tuple[int, int],
    factor: int = 1,
    *,
    order: int = 0,
    weights: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Resample a scan image ``(H, W)`` on the photo grid.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` scan image (any units).
    matrix : numpy.ndarray
        Scan ``(col, row, 1)`` -> photo ``(x, y, w)`` homography.
    size : tuple of int
        Photo ``(width, height)`` (original pixels).
    factor : int
        Output pixel = ``factor`` x ``factor`` photo pixels.
    order : int
        Interpolation order (0: nearest scan pixel, 1: bilinear).
    weights : bool
        Also return the feathering weight of each output pixel: its distance (scan pixels)
        to the nearest scan edge, for blending overlapping scans.

    Returns
    -------
    numpy.ndarray
        ``(height // factor, width // factor)`` float32, NaN outside the scan (and the
        weights, float32, 0 outside, when asked).
    """
    img = np.asarray(image, dtype=np.float32)
    hs, ws = img.shape
    oh, ow = size[1] // factor, size[0] // factor
    inv = np.linalg.inv(np.asarray(matrix, dtype=float))
    out = np.full((oh, ow), np.nan, dtype=np.float32)
    wout = np.zeros((oh, ow), dtype=np.float32) if weights else None
    xs = np.arange(ow) * factor + (factor - 1) / 2
    for y0 in range(0, oh, _BAND):
        ys = np.arange(y0, min(oh, y0 + _BAND)) * factor + (factor - 1) / 2
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        q = inv @ np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
        col, row = q[0] / q[2], q[1] / q[2]
        inside = (col >= -0.5) & (col < ws - 0.5) & (row >= -0.5) & (row < hs - 0.5) & (q[2] > 0)
        v = map_coordinates(img, [np.clip(row, 0, hs - 1), np.clip(col, 0, ws - 1)], order=order,
                            mode="nearest")
        band = np.where(inside, v, np.nan).reshape(yy.shape)
        out[y0: y0 + len(ys)] = band
        if wout is not None:
            d = np.minimum(np.minimum(col + 0.5, ws - 0.5 - col), np.minimum(row + 0.5, hs - 0.5 - row))
            wout[y0: y0 + len(ys)] = np.where(inside, np.maximum(d, 1e-3), 0).reshape(yy.shape)
    return (out, wout) if weights else out


def _unit(a: np.ndarray, top: float | None = None) -> np.ndarray:
    """Scale to 0..1 by the 99.5th percentile of the finite values (NaN stays NaN)."""
    ok = np.isfinite(a)
    if top is None:
        top = float(np.percentile(a[ok], 99.5)) if ok.any() else 1.0
    top = top if top > 0 else 1.0
    return np.clip(a / top, 0, 1)


def overlay_rgba(warped: np.ndarray, colour: tuple[int, int, int], opacity: float = 0.85) -> np.ndarray:
    """``(h, w, 4)`` uint8: the element's colour, alpha = opacity x relative amount; clear outside."""
    u = _unit(warped)
    rgba = np.zeros(warped.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.where(np.isfinite(u), np.round(255 * opacity * np.nan_to_num(u)), 0).astype(np.uint8)
    return rgba


def composite_rgba(warped: Sequence[np.ndarray]) -> np.ndarray:
    """``(h, w, 4)`` uint8 RGB composite of up to three maps (red, green, blue); clear outside."""
    if not 1 <= len(warped) <= 3:
        raise ParameterError(f"an RGB composite takes 1 to 3 maps, got {len(warped)}")
    shape = warped[0].shape
    rgba = np.zeros(shape + (4,), dtype=np.uint8)
    inside = np.zeros(shape, dtype=bool)
    for c, w in enumerate(warped):
        rgba[..., c] = np.round(255 * np.nan_to_num(_unit(w))).astype(np.uint8)
        inside |= np.isfinite(w)
    rgba[..., 3] = np.where(inside, 255, 0)
    return rgba


def _save_png(path: Path, rgba: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgba, mode="RGBA").save(path)


def _save_tiff(path: Path, data: np.ndarray, meta: dict[str, Any]) -> None:
    import json

    import tifffile

    tifffile.imwrite(path, data.astype(np.float32), description=json.dumps(meta))


def _out_dir(out: str | os.PathLike) -> Path:
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputLocationError(f"cannot create the output folder ({exc.strerror})", p) from None
    return p


def _write_set(out: Path, elements: Sequence[str], warped: Sequence[np.ndarray], meta: dict[str, Any],
               prefix: str) -> list[Path]:
    written: list[Path] = []
    for k, (el, w) in enumerate(zip(elements, warped)):
        tif = out / f"{prefix}{el}.tiff"
        _save_tiff(tif, w, {**meta, "element": el})
        png = out / f"{prefix}{el}.png"
        _save_png(png, overlay_rgba(w, PALETTE[k % len(PALETTE)]))
        written += [tif, png]
    comp = out / f"{prefix}composite_{'-'.join(elements[:3])}.png"
    _save_png(comp, composite_rgba(list(warped[:3])))
    written.append(comp)
    return written


def export_overlays(ds: Any, elements: Sequence[str], out: str | os.PathLike, *,
                    max_side: int | None = 4096, allow_doubtful: bool = True) -> list[Path]:
    """Write each element map warped onto the registered photo: float TIFF, RGBA PNG, composite.

    Parameters
    ----------
    ds : DataStack or path
        A registered scan with stored maps of ``elements``.
    elements : sequence of str
        Elements (the first three make the RGB composite).
    out : str or os.PathLike
        Output folder (created).
    max_side : int, optional
        Longest side of the output grid (photo pixels reduced by an integer factor).
    allow_doubtful : bool
        Accept a ``'doubtful'`` registration (a ``'failed'`` one is always refused).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    LayerMissingError
        No registration or no maps of those elements.
    ParameterError
        The registration failed (or is doubtful with ``allow_doubtful=False``).
    """
    from maxrf.registration.register import element_stack
    from maxrf.registration.result import read_registration
    from maxrf.store import open_datastack

    ds = open_datastack(ds)
    reg = read_registration(ds)
    _check_usable(reg, ds.path, allow_doubtful)
    stack, _ = element_stack(ds, list(elements))
    f = output_factor(reg.photo_size, max_side)
    warped = [warp_to_photo(m, reg.matrix, reg.photo_size, f) for m in stack]
    meta = {"photo": reg.photo_path, "photo_sha256": reg.photo_sha256, "factor": f,
            "pixel_centre": "output (i, j) at photo (f*j + (f-1)/2, f*i + (f-1)/2)",
            "units": "counts per pixel (scan units)", "datastack": str(ds.path)}
    return _write_set(_out_dir(out), list(elements), warped, meta, "")


def _check_usable(reg: Registration, path: Any, allow_doubtful: bool) -> None:
    if reg.quality == "failed":
        raise ParameterError(f"{path}: its registration to {reg.photo_path} failed; register it again "
                             "(with --points if the automatic search cannot find it)")
    if reg.quality == "doubtful" and not allow_doubtful:
        raise ParameterError(f"{path}: its registration to {reg.photo_path} is doubtful")


def mosaic(
    datastacks: Sequence[Any],
    photo: str | os.PathLike,
    elements: Sequence[str],
    out: str | os.PathLike | None = None,
    *,
    max_side: int | None = 4096,
) -> dict[str, np.ndarray]:
    """Combine the maps of several scans registered to one photo into maps in photo coordinates.

    Overlaps are blended with weights that fall to zero at each scan's edge (feathering),
    so seams do not show and every pixel is a weighted mean of the scans that cover it.

    Parameters
    ----------
    datastacks : sequence of DataStack or path
        Scans, each registered (``maxrf register``) to ``photo``, with stored maps of ``elements``.
    photo : str or os.PathLike
        The common photograph (checked against each registration's checksum).
    elements : sequence of str
    out : str or os.PathLike, optional
        Folder for ``mosaic_<El>.tiff`` / ``.png`` and the composite.
    max_side : int, optional
        Longest side of the output grid.

    Returns
    -------
    dict of str to numpy.ndarray
        Per element the ``(h, w)`` float32 mosaic (NaN where no scan covers).

    Raises
    ------
    LayerMissingError
        A scan is not registered or lacks the maps.
    ParameterError
        A registration failed, or was made against another photograph.
    """
    from maxrf.io.photo import photo_size, sha256_file
    from maxrf.registration.register import element_stack
    from maxrf.registration.result import read_registration
    from maxrf.store import open_datastack

    if not datastacks:
        raise ParameterError("mosaic needs at least one datastack")
    size = photo_size(photo)
    digest = sha256_file(photo)
    f = output_factor(size, max_side)
    oh, ow = size[1] // f, size[0] // f
    acc = {el: np.zeros((oh, ow), dtype=np.float64) for el in elements}
    wsum = np.zeros((oh, ow), dtype=np.float64)
    for item in datastacks:
        ds = open_datastack(item)
        reg = read_registration(ds)
        _check_usable(reg, ds.path, True)
        if reg.photo_sha256 != digest:
            raise ParameterError(f"{ds.path}: registered to another photograph ({reg.photo_path}), "
                                 f"not {photo}; register it to this photo first")
        stack, _ = element_stack(ds, list(elements))
        wmap = None
        for el, m in zip(elements, stack):
            v, wmap = warp_to_photo(m, reg.matrix, size, f, weights=True)
            acc[el] += np.nan_to_num(v) * wmap
        wsum += wmap
    with np.errstate(invalid="ignore", divide="ignore"):
        result = {el: np.where(wsum > 0, a / wsum, np.nan).astype(np.float32) for el, a in acc.items()}
    if out is not None:
        meta = {"photo": str(photo), "photo_sha256": digest, "factor": f,
                "datastacks": [str(getattr(d, "path", d)) for d in datastacks],
                "units": "counts per pixel (scan units)", "blend": "feathered by distance to scan edges"}
        _write_set(_out_dir(out), list(elements), [result[el] for el in elements], meta, "mosaic_")
    return result
