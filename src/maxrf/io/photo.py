"""Photographs of artworks (JPEG, PNG, TIFF incl. 16-bit), read downsampled in bounded memory.

A photograph of 8000 x 6000 pixels is 144 MB as 8-bit RGB and 576 MB as float32; the
registration needs it only at a resolution near the scan's. :func:`read_photo` therefore
never holds the full-resolution image:

* JPEG: Pillow's ``draft`` decodes at 1/2, 1/4 or 1/8 scale inside the DCT (no full
  decode), then ``Image.reduce`` box-averages by the remaining integer factor.
* TIFF: tifffile decodes strip by strip (or tile by tile); each segment is box-averaged
  into the output as it arrives, so the peak memory is one segment plus the output.
* PNG and other formats Pillow reads: Pillow's ``reduce`` (the decoded image is 8-bit, so
  PNGs up to the size of typical photographs stay within a few hundred MB).

Coordinates: the returned image is the photograph box-averaged by an integer ``factor``;
its pixel ``(i, j)`` (row, col) covers original pixels ``factor*i .. factor*i+factor-1``,
so its centre is at original pixel ``factor*j + (factor-1)/2`` (x) and
``factor*i + (factor-1)/2`` (y). Photo coordinates everywhere in maxrf are original
(full-resolution) pixel coordinates with pixel centres at integers.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maxrf.errors import MissingFileError, ParameterError, ScanFormatError

__all__ = ["Photo", "PhotoFormatError", "photo_size", "read_photo", "sha256_file"]

_TIFF_SUFFIXES = {".tif", ".tiff"}
#: Pillow refuses images above this many pixels by default (decompression bomb guard)
_MAX_PIXELS = 40000 * 40000


class PhotoFormatError(ScanFormatError):
    """A photograph cannot be read (unknown format, truncated, unsupported layout)."""


@dataclass
class Photo:
    """A photograph read at reduced resolution.

    Attributes
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` float32 RGB in 0..1 (grey photographs are repeated to 3 channels).
    factor : int
        Downsampling factor (original pixels per returned pixel, per axis).
    size : tuple of int
        ``(width, height)`` of the original photograph (pixels).
    path : str
        The file read.
    sha256 : str
        Checksum of the file.
    bits : int
        Bits per sample of the file (8 or 16).
    """

    image: np.ndarray
    factor: int
    size: tuple[int, int]
    path: str
    sha256: str
    bits: int = 8

    @property
    def grey(self) -> np.ndarray:
        """``(h, w)`` float32 luminance (Rec. 709 weights) in 0..1."""
        return (self.image @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)).astype(np.float32)

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Reduced-image ``(x, y)`` pixel coordinates to original photo coordinates."""
        return np.asarray(xy, dtype=float) * self.factor + (self.factor - 1) / 2.0


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MissingFileError("photograph not found", p)
    if not p.is_file():
        raise PhotoFormatError("not a file", p)
    return p


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(4)
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def photo_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of a photograph in pixels, read from its header only.

    Raises
    ------
    MissingFileError
        If the file does not exist.
    PhotoFormatError
        If it is not a readable image.
    """
    p = _check_path(path)
    if _is_tiff(p):
        page = _tiff_page(p)
        return int(page.imagewidth), int(page.imagelength)
    img = _open_pillow(p)
    try:
        return int(img.size[0]), int(img.size[1])
    finally:
        img.close()


def _factor_for(size: tuple[int, int], max_side: int | None, factor: int | None) -> int:
    if factor is not None:
        if int(factor) < 1:
            raise ParameterError(f"factor must be >= 1, got {factor}")
        return int(factor)
    if max_side is None:
        return 1
    if int(max_side) < 16:
        raise ParameterError(f"max_side must be >= 16 pixels, got {max_side}")
    return max(1, math.ceil(max(size) / int(max_side)))


def read_photo(
    path: str | os.PathLike,
    max_side: int | None = 2048,
    *,
    factor: int | None = None,
) -> Photo:
    """Read a photograph downsampled by an integer factor, in bounded memory.

    Parameters
    ----------
    path : str or os.PathLike
        JPEG, PNG or TIFF (8 or 16 bit, grey, RGB or RGBA; alpha is dropped).
    max_side : int, optional
        Largest side (pixels) of the returned image; the factor is the smallest integer
        that fits. ``None``: full resolution.
    factor : int, optional
        Downsampling factor, overriding ``max_side``.

    Returns
    -------
    Photo

    Raises
    ------
    MissingFileError
        If the file does not exist.
    PhotoFormatError
        If it is not an image maxrf can read (the message says why).
    ParameterError
        For an invalid ``max_side`` / ``factor``.
    """
    p = _check_path(path)
    if _is_tiff(p):
        image, size, bits, f = _read_tiff(p, max_side, factor)
    else:
        image, size, bits, f = _read_pillow(p, max_side, factor)
    return Photo(image=image, factor=f, size=size, path=str(p), sha256=sha256_file(p), bits=bits)


# ------------------------------------------------------------------------ Pillow
def _open_pillow(p: Path):
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    try:
        return Image.open(p)
    except UnidentifiedImageError:
        raise PhotoFormatError("not an image file maxrf can read (JPEG, PNG or TIFF)", p) from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise PhotoFormatError(f"cannot read the image ({exc})", p) from None


def _read_pillow(p: Path, max_side: int | None, factor: int | None
                 ) -> tuple[np.ndarray, tuple[int, int], int, int]:
    img = _open_pillow(p)
    try:
        size = (int(img.size[0]), int(img.size[1]))
        f = _factor_for(size, max_side, factor)
        if img.format == "JPEG" and factor is None and f > 2:
            # round up to a multiple of the DCT scale so the decoder does most of the work
            d = 8 if f >= 8 else 4 if f >= 4 else 2
            f = d * math.ceil(f / d)
        draft = 1
        if img.format == "JPEG" and f > 1:
            # DCT scaling: 1/2, 1/4 or 1/8, only when it divides the factor exactly
            for d in (8, 4, 2):
                if f % d == 0:
                    draft = d
                    break
            if draft > 1:
                img.draft("RGB", (math.ceil(size[0] / draft), math.ceil(size[1] / draft)))
                draft = max(1, round(size[0] / img.size[0]))
        try:
            img.load()
        except (OSError, SyntaxError) as exc:
            raise PhotoFormatError(f"cannot decode the image, truncated or damaged? ({exc})", p) from None
        bits = 16 if img.mode in ("I;16", "I;16B", "I;16L", "I") else 8
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.float32)
            arr /= 65535.0
            arr = _box_reduce(arr, f // draft)
            arr = np.repeat(arr[..., None], 3, axis=2)
        else:
            img = img.convert("RGB")
            rest = f // draft
            if rest > 1:
                img = img.reduce(rest)
            arr = np.asarray(img, dtype=np.float32)
            arr /= 255.0  # in place: a copy would double the largest array of the read
            # reduce keeps partial boxes at the edge; our convention drops them
            arr = arr[: size[1] // f, : size[0] // f] if f > 1 else arr
    finally:
        img.close()
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PhotoFormatError(f"image too small for a factor {f} reduction", p)
    return np.ascontiguousarray(arr, dtype=np.float32), size, bits, f


def _box_reduce(a: np.ndarray, f: int) -> np.ndarray:
    """Box-average a 2-D or 3-D array by ``f`` along its first two axes (edges dropped)."""
    if f <= 1:
        return a.astype(np.float32, copy=False)
    h, w = a.shape[0] // f, a.shape[1] // f
    a = a[: h * f, : w * f]
    shape = (h, f, w, f) + a.shape[2:]
    return a.reshape(shape).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


# ------------------------------------------------------------------------ TIFF
def _tiff_page(p: Path):
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            page = tif.pages.first
            page.keyframe  # noqa: B018 - load the tags now, before the file closes
            return page
    except Exception as exc:
        raise PhotoFormatError(f"cannot read the TIFF header ({exc})", p) from None


def _read_tiff(p: Path, max_side: int | None, factor: int | None
               ) -> tuple[np.ndarray, tuple[int, int], int, int]:
    import tifffile

    try:
        tif = tifffile.TiffFile(p)
    except Exception as exc:
        raise PhotoFormatError(f"cannot read the TIFF header ({exc})", p) from None
    with tif:
        try:
            page = tif.pages.first
        except (IndexError, ValueError):
            raise PhotoFormatError("the TIFF holds no readable image", p) from None
        h, w = int(page.imagelength), int(page.imagewidth)
        spp = int(page.samplesperpixel)
        dtype = np.dtype(page.dtype) if page.dtype is not None else None
        if dtype is None or dtype.kind not in "uf" or int(page.imagedepth) != 1:
            raise PhotoFormatError(
                f"unsupported TIFF layout (dtype {page.dtype}, depth {page.imagedepth})", p)
        if page.planarconfig != 1 and spp > 1:
            raise PhotoFormatError("planar (separate-sample) TIFFs are not supported; save as RGB", p)
        scale = float(np.iinfo(dtype).max) if dtype.kind == "u" else 1.0
        f = _factor_for((w, h), max_side, factor)
        oh, ow = h // f, w // f
        if oh < 1 or ow < 1:
            raise PhotoFormatError(f"image too small for a factor {f} reduction", p)
        nch = 1 if spp == 1 else min(spp, 3)
        acc = np.zeros((oh, ow, nch), dtype=np.float64)
        try:
            for seg, index, shape in page.segments(maxworkers=1, buffersize=16 << 20):
                if seg is None:
                    continue
                _accumulate(acc, seg, index, shape, f, nch)
        except PhotoFormatError:
            raise
        except Exception as exc:
            raise PhotoFormatError(f"cannot decode the TIFF, truncated or damaged? ({exc})", p) from None
    acc /= f * f * scale
    if nch == 1:
        acc = np.repeat(acc, 3, axis=2)
    elif nch == 2:
        raise PhotoFormatError("two-sample TIFFs are not supported", p)
    return np.clip(acc, 0, 1).astype(np.float32), (w, h), dtype.itemsize * 8, f


def _accumulate(acc: np.ndarray, seg: np.ndarray, index: tuple[int, ...], shape: tuple[int, ...],
                f: int, nch: int) -> None:
    """Box-sum one decoded strip/tile (normalised 5-D index/shape) into ``acc``."""
    _, _, y0, x0, _ = index
    _, sh, sw, _ = shape
    seg = np.asarray(seg).reshape(sh, sw, -1)[..., :nch].astype(np.float64)
    oh, ow = acc.shape[:2]
    rows = np.arange(y0, y0 + sh) // f
    cols = np.arange(x0, x0 + sw) // f
    rk = rows < oh
    ck = cols < ow
    seg = seg[rk][:, ck]
    rows, cols = rows[rk], cols[ck]
    if seg.size == 0:
        return
    # sum consecutive pixels of the same output row / col (indices are sorted)
    ru, rstart = np.unique(rows, return_index=True)
    cu, cstart = np.unique(cols, return_index=True)
    s = np.add.reduceat(np.add.reduceat(seg, rstart, axis=0), cstart, axis=1)
    acc[ru[0]: ru[-1] + 1, cu[0]: cu[-1] + 1] += s
