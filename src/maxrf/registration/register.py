"""``register``: a scan onto a photograph, automatically or from control points, with a verdict."""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from maxrf.errors import LayerMissingError, ParameterError
from maxrf.io.photo import Photo, read_photo
from maxrf.registration import auto
from maxrf.registration import homography as hg
from maxrf.registration.result import Registration, write_registration
from maxrf.registration.stability import Stability, stability
from maxrf.registration.verdict import judge

__all__ = ["register", "register_image", "scan_image", "scan_maps", "scan_stack"]

_MAX_SIDE = 2048
#: shorter side (scan pixels) of a large scan at the coarse levels
_COARSE_SCAN_SIDE = 80
#: channel bands fitted separately in the fine stages (see :func:`scan_maps`)
_BANDS = 32
#: scan pixels sampled by the colour fit at the intermediate levels of a large scan
_LEVEL_SAMPLES = 6000
#: high-pass of the second coarse search (sigma, share of the template's shorter side)
_SEARCH_HIGHPASS = 0.1


def scan_image(ds: Any, image: str | Sequence[str] = "sum") -> tuple[np.ndarray, str]:
    """The scan image registered: the sum image or element maps from the stored layers.

    Parameters
    ----------
    ds : DataStack
    image : str or sequence of str
        ``'sum'`` (counts above 1 keV, one pass over the cube, or every channel when the
        scan is not calibrated), an element (``'Fe'``) or several (``'Fe,Pb'`` / list: the
        sum of their maps, each scaled to 0..1), read from the ``element_maps`` or
        ``peak_maps`` layer.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W)`` float64.
    label : str
    """

    names = _names(image)
    if names == ["sum"]:
        if "sum_image" not in ds.layers:
            _band_layers(ds)
        return np.asarray(ds.read("sum_image")["image"], dtype=float), "sum"
    stack, label = element_stack(ds, names)
    return sum(auto.normalise(m).astype(float) for m in stack), label


def scan_maps(ds: Any, image: str | Sequence[str] = "sum") -> np.ndarray:
    """Separate scan images for the fine stages: the element maps, or channel bands for ``'sum'``.

    The photo's absorbances are close to linear in the amount of each pigment
    (Beer-Lambert), while the sum image weighs the elements by their count rates, not by
    their colours: no function of three colours reproduces it when more than three
    elements vary, and the misfit, spatially structured, biases the fit's optimum by a
    pixel or more. A regression of the colours on separate images has no such misfit. For
    ``'sum'`` they are 32 channel bands of equal counts (:func:`maxrf.maps.band_images`),
    which span the element maps without identifying the elements.

    Returns
    -------
    numpy.ndarray
        ``(k, H, W)`` float32.
    """
    return _maps_into(ds, image, lead=0)


def _maps_into(ds: Any, image: str | Sequence[str], lead: int) -> np.ndarray:
    """:func:`scan_maps` after ``lead`` unfilled leading slots, read map by map (the
    stored float64 whole is twice the float32 maps)."""
    names = _names(image)
    if names != ["sum"]:
        maps = element_stack(ds, names)[0]  # a list of 2-D maps
        shape = np.shape(maps[0])
    else:
        if "band_images" not in ds.layers:
            _band_layers(ds)
        maps = ds.read("band_images", lazy=True)["images"]  # read band by band below
        shape = tuple(maps.shape[1:])
    out = np.empty((lead + len(maps), *shape), dtype=np.float32)
    for i in range(len(maps)):
        out[lead + i] = maps[i]
    return out


def _stack_of(ds: Any, image: str | Sequence[str], img: np.ndarray) -> np.ndarray:
    """:func:`scan_stack` of ``img`` and :func:`scan_maps`, scaled in place.

    A large scan's 32 bands are 50 MB as float32: read into the stack and scaled there,
    they are never held twice (unscaled and scaled).
    """
    out = _maps_into(ds, image, lead=1)
    if out.shape[1:] != img.shape:
        raise ParameterError(f"scan maps must be {img.shape} like the scan image, got {out.shape[1:]}")
    out[0] = auto.normalise(img)
    for i in range(1, len(out)):
        out[i] = auto.normalise(out[i])
    return out


def _checked_image(image: np.ndarray) -> np.ndarray:
    """``image`` as float, or a :class:`ParameterError` unless it is 2-D and at least 8 x 8."""
    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ParameterError(f"the scan image must be 2-D and at least 8 x 8 pixels, got {img.shape}")
    return img


def _names(image: str | Sequence[str]) -> list[str]:
    """``'Fe,Pb'`` or ``['Fe', 'Pb']`` -> ``['Fe', 'Pb']``."""
    names = [image] if isinstance(image, str) else list(image)
    return [n.strip() for part in names for n in part.split(",") if n.strip()]


def _band_layers(ds: Any) -> None:
    """One pass over the cube: the ``band_images`` layer and the ``sum_image`` (their sum).

    Kept as layers so that registering again does not read the cube again.
    """
    from maxrf import maps

    try:
        bands, windows = maps.band_images(ds, _BANDS, min_keV=1.0)
        what = "channels >= 1 keV"
    except LayerMissingError:  # not calibrated: every channel
        bands, windows = maps.band_images(ds, _BANDS, min_keV=None)
        what = "every channel (uncalibrated scan)"
    ds.write_layer("band_images", {"images": np.asarray(bands, dtype=np.float64),
                                   "windows": np.asarray(windows, dtype=np.int64)},
                   {"units": "counts per pixel", "what": f"{len(bands)} bands of equal mean counts, {what}"})
    ds.write_layer("sum_image", {"image": np.asarray(bands, dtype=np.float64).sum(axis=0)},
                   {"units": "counts per pixel", "what": f"sum over {what}"})


def element_stack(ds: Any, elements: Sequence[str]) -> tuple[list[np.ndarray], str]:
    """Maps of ``elements`` from the ``element_maps`` (else ``peak_maps``) layer.

    Raises
    ------
    LayerMissingError
        If no maps layer holds them (run ``maxrf maps``).
    """
    for name in ("element_maps", "peak_maps"):
        if name not in ds.layers:
            continue
        layer = ds.read(name, lazy=True)
        have = list(layer.attrs.get("elements", []) or layer.attrs.get("labels", []))
        if all(e in have for e in elements):
            stack = [np.asarray(layer["maps"][have.index(e)], dtype=float) for e in elements]
            return stack, "+".join(elements)
    raise LayerMissingError(
        f"no stored maps of {', '.join(elements)}: run 'maxrf maps --elements {','.join(elements)}' first",
        ds.path)


def _read(photo: str | os.PathLike | Photo, max_side: int) -> Photo:
    return photo if isinstance(photo, Photo) else read_photo(photo, max_side=max_side)


def register_image(
    image: np.ndarray,
    photo: str | os.PathLike | Photo,
    points: np.ndarray | None = None,
    *,
    refine: bool | None = None,
    max_side: int = _MAX_SIDE,
    label: str = "image",
    maps: np.ndarray | None = None,
) -> Registration:
    """Register a scan image ``(H, W)`` onto a photograph (see :func:`register`).

    ``maps`` ``(k, H, W)``: further scan images (element or peak maps, see
    :func:`scan_maps`) fitted together with ``image`` in the fine stages and the verdict.
    """
    img = _checked_image(image)
    return _register_stack(scan_stack(img, maps), photo, points, refine=refine, max_side=max_side,
                           label=label)


def _register_stack(scan: np.ndarray, photo: str | os.PathLike | Photo, points: np.ndarray | None,
                    *, refine: bool | None, max_side: int, label: str) -> Registration:
    """:func:`register_image` of a ready :func:`scan_stack` (``(1 + k, H, W)`` float32)."""
    img = scan[0]
    ph = _read(photo, max_side)
    chans = auto.photo_channels(ph.image)
    if not isinstance(photo, Photo):  # read here: only the channels are used from now on
        # a new empty array, not a slice: a view would keep the whole image alive
        ph.image = np.empty((0, 0, 3), dtype=np.float32)
    inliers = None
    stable = None
    residuals: list[float] = []
    if points is not None:
        pts = _check_points(points, img.shape, ph.size)
        if len(pts) > 4:
            scale0 = math.sqrt(abs(np.linalg.det(hg.fit_dlt(pts[:, :2], pts[:, 2:])[:2, :2])))
            matrix, keep = hg.fit_ransac(pts[:, :2], pts[:, 2:], threshold=max(3.0, scale0))
            inliers = [bool(k) for k in keep]
        else:
            matrix = hg.fit_dlt(pts[:, :2], pts[:, 2:])
        method = "points"
        if refine:
            with _one_blas_thread():
                matrix = _refine_from(scan, chans, ph, matrix)
            method = "points+auto"
        residuals = list(np.linalg.norm(hg.apply(matrix, pts[:, :2]) - pts[:, 2:], axis=1))
    else:
        if refine is False:
            raise ParameterError("without control points the registration must be automatic")
        pts = None
        with _one_blas_thread():
            matrix, stable = _robust(scan, chans, ph, _automatic(scan, chans, ph))
        method = "auto"
    reg = Registration(
        matrix=matrix, method=method, photo_path=ph.path, photo_sha256=ph.sha256,
        photo_size=ph.size, scan_shape=img.shape, quality="failed",
        points=pts, inliers=inliers, scan_image=label)
    with _one_blas_thread():
        judge(reg, scan, chans, ph, residuals, stable)
    _LEVEL_CACHE.clear()  # tens of MB for a large photo: not kept beyond the registration
    return reg


def _robust(scan: np.ndarray, chans: np.ndarray, ph: Photo, matrix: np.ndarray
            ) -> tuple[np.ndarray, Stability | None]:
    """The automatic result, or its refit without the quadrant that pulls it.

    When part of the scan is hidden in the photo (a grey card, a label), the refit without
    the quadrant holding it fits the rest far better than the whole fit does: the refit
    with the largest significant gain is taken (on development photos with a card over a
    corner of the scan it was within 0.4 px where the whole fit was 1.7-2.5 px off). The
    verdict then measures its stability afresh; otherwise it reuses this one.
    """
    st = stability(scan, chans, ph, matrix)
    if st.max_shift == 0.0:  # no refit gains significantly: nothing pulls the result
        return matrix, st
    return st.matrices[int(np.argmax(st.gains))], None


def _one_blas_thread() -> Any:
    """The metrics' products are small (thousands x tens): BLAS threads only contend,
    and on a loaded machine their spinning multiplied the CPU time by three to four."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def scan_stack(img: np.ndarray, maps: np.ndarray | None) -> np.ndarray:
    """``(1 + k, H, W)`` float32: ``img`` then each map, each scaled to 0..1 on its own."""
    extra = [] if maps is None else maps
    out = np.empty((1 + len(extra), *img.shape), dtype=np.float32)
    out[0] = auto.normalise(img)
    for i, m in enumerate(extra):
        if np.shape(m) != img.shape:
            raise ParameterError(f"scan maps must be {img.shape} like the scan image, got {np.shape(m)}")
        out[1 + i] = auto.normalise(m)
    return out


def register(
    ds: Any,
    photo: str | os.PathLike | Photo,
    points: np.ndarray | None = None,
    *,
    image: str | Sequence[str] = "sum",
    refine: bool | None = None,
    store: bool = True,
    max_side: int = _MAX_SIDE,
) -> Registration:
    """Register a scan onto a photograph of the artwork.

    Parameters
    ----------
    ds : DataStack or path
        The scan.
    photo : str, os.PathLike or Photo
        JPEG, PNG or TIFF (8/16-bit), any size (read downsampled, bounded memory).
    points : array_like, optional
        ``(N, 4)`` control points ``xrf_col, xrf_row, photo_x, photo_y`` (N >= 4; pixel
        centres at integers; RANSAC for N > 4). Without them: automatic.
    image : str or sequence of str
        Scan image registered: ``'sum'`` or element(s) with stored maps (see :func:`scan_image`);
        the fine stages fit the separate images behind it: the channel bands of ``'sum'``
        (computed once and kept as the ``band_images`` layer) or each element's map (see
        :func:`scan_maps`).
    refine : bool, optional
        With points: refine the points' homography automatically (``'points+auto'``).
    store : bool
        Write the result as the datastack's ``registration`` layer (replacing any).
    max_side : int
        Largest side (pixels) at which the photo is read.

    Returns
    -------
    Registration
        Always with a verdict; a ``'failed'`` one is stored too (the layer says so).

    Raises
    ------
    MissingFileError, PhotoFormatError
        An unreadable photo.
    ParameterError
        Bad control points.
    """
    from maxrf.store import open_datastack

    ds = open_datastack(ds)
    img, label = scan_image(ds, image)
    img = _checked_image(img)
    reg = _register_stack(_stack_of(ds, image, img), photo, points, refine=refine, max_side=max_side,
                          label=label)
    if store:
        write_registration(ds, reg)
    return reg


def _check_points(points: np.ndarray, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    try:
        pts = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError("control points must be numbers: xrf_col, xrf_row, photo_x, photo_y") from None
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ParameterError(f"control points must be N rows of 4 values, got shape {pts.shape}")
    if len(pts) < 4:
        raise ParameterError(f"at least 4 control point pairs are needed, got {len(pts)}")
    if not np.isfinite(pts).all():
        raise ParameterError("control points contain NaN or infinite values")
    h, w = shape
    bad = (pts[:, 0] < -0.5) | (pts[:, 0] > w - 0.5) | (pts[:, 1] < -0.5) | (pts[:, 1] > h - 0.5)
    if bad.any():
        raise ParameterError(f"control point {int(np.argmax(bad)) + 1} lies outside the {w} x {h} scan")
    bad = (pts[:, 2] < -0.5) | (pts[:, 2] > size[0] - 0.5) | (pts[:, 3] < -0.5) | (pts[:, 3] > size[1] - 0.5)
    if bad.any():
        raise ParameterError(
            f"control point {int(np.argmax(bad)) + 1} lies outside the {size[0]} x {size[1]} photo")
    return pts


def _fine_level(chans: np.ndarray, ph: Photo, scale: float) -> tuple[np.ndarray, float]:
    """Photo channels at about two pixels per scan pixel (original pixels per pixel returned)."""
    f = _fine_factor(ph, scale)
    return auto.box_reduce(chans, f), float(ph.factor * f)


def _fine_factor(ph: Photo, scale: float) -> int:
    """Reduction of the read photo to about two pixels per scan pixel.

    ``scale``: original photo pixels per scan pixel.
    """
    return max(1, int(scale / (2 * ph.factor)))


#: the last photo level prepared for the colour fit: (channels, level factor, smoothing) ->
#: spline coefficients. The verdict builds a dozen metrics on the same level; preparing it
#: (box reduction, smoothing, spline filter) costs more than evaluating them.
_LEVEL_CACHE: dict[str, Any] = {}


def _colour_level(chans: np.ndarray, ph: Photo, s: float) -> tuple[np.ndarray, float]:
    f = float(ph.factor * _fine_factor(ph, s))
    sigma = round(0.4 * s / f, 2)
    ref = _LEVEL_CACHE.get("chans")
    if ref is not None and ref() is chans and _LEVEL_CACHE.get("key") == (f, sigma):
        return _LEVEL_CACHE["coeffs"], f
    _LEVEL_CACHE.clear()  # the previous level's coefficients go before the next's are made
    fine, _ = _fine_level(chans[1:], ph, s)  # reduced only when not cached
    # interleaved (h, w, k) for the compiled sampler, filled channel by channel: a large
    # photo's copies add up
    coeffs = np.empty(fine.shape[1:] + fine.shape[:1], dtype=np.float32)
    for i, c in enumerate(fine):
        coeffs[..., i] = auto.spline_coefficients(auto.smooth_for_scan(c, s / f)[None])[0]
    _LEVEL_CACHE.update(chans=weakref.ref(chans), key=(f, sigma), coeffs=coeffs)
    return coeffs, f


def fit_metric(scan: np.ndarray, chans: np.ndarray, ph: Photo, matrix: np.ndarray,
               mask: np.ndarray | None = None, partial: bool = False,
               max_samples: int = auto._MAX_SAMPLES) -> auto.FitMetric:
    """The colour-fit metric of ``scan`` against the photo's R, G, B absorbances near ``matrix``'s scale."""
    coeffs, f = _colour_level(chans, ph, auto._scale(matrix))
    return auto.FitMetric(scan, coeffs, f, mask=mask, partial=partial, prefiltered=True,
                          max_samples=max_samples)


def _automatic(scan: np.ndarray, chans: np.ndarray, ph: Photo) -> np.ndarray:
    """Coarse to fine over the scan's resolution too.

    A large scan is first registered whole at a reduced resolution (its shorter side about
    :data:`_COARSE_SCAN_SIDE` pixels: the search, SimpleITK and the projective fit are then
    as fast as for a small scan and their capture range in scan pixels is ``k`` times
    larger); the projective refinement then runs at resolutions three times finer each
    time down to the full one, each level starting within its capture range (a few of
    its pixels) from the level before.
    """
    k = min(scan.shape[-2:]) // _COARSE_SCAN_SIDE
    if k < 2:
        return _automatic_level(scan, chans, ph)
    matrix = _automatic_level(_reduced(scan, k), chans, ph) @ _to_reduced(k)
    while k > 1:
        k = max(1, k // 3)
        level = _reduced(scan, k) if k > 1 else scan
        m = matrix @ np.linalg.inv(_to_reduced(k))
        # an intermediate level only has to bring the next within its capture range, from
        # within a pixel or so of its optimum: a local Newton search suffices. The full
        # resolution keeps Powell: on a smooth scan the optimum lies along nearly flat
        # perspective modes that six Newton steps did not follow (held-out 8000 x 6000
        # photo of seed 650: 3.0 px max with Newton, 0.81 px with Powell)
        n = auto._MAX_SAMPLES if k == 1 else _LEVEL_SAMPLES
        refine = auto.refine_projective if k == 1 else auto.refine_local
        m = refine(fit_metric(level, chans, ph, m, max_samples=n), m, auto._scale(m))
        matrix = m @ _to_reduced(k)
    return matrix


def _reduced(scan: np.ndarray, k: int) -> np.ndarray:
    """The scan images box-averaged by ``k``, each scaled to 0..1 again."""
    return np.stack([auto.normalise(a) for a in auto.box_reduce(scan, k)])


def _to_reduced(k: int) -> np.ndarray:
    """Full scan (col, row) -> pixel of the scan reduced by ``k``.

    Reduced pixel i covers full pixels k*i .. k*i+k-1: full c = k * c_reduced + (k - 1) / 2.
    """
    return np.array([[1 / k, 0, -(k - 1) / (2 * k)], [0, 1 / k, -(k - 1) / (2 * k)], [0, 0, 1]])


def _automatic_level(scan: np.ndarray, chans: np.ndarray, ph: Photo) -> np.ndarray:
    """Search, then similarity from the few most promising poses, then :func:`_refine_from`.

    Two searches: the scan image as it is, and high-passed (:data:`_SEARCH_HIGHPASS`).
    A scan whose image is dominated by a smooth background the photo does not show (the
    paper's filler under thin ink strokes) matches wrong places as it is; a smooth
    painting has little left once high-passed. Neither ranking is reliable alone, nor is
    the colour fit at the unrefined poses (thin strokes a few pixels off explain nothing):
    the best of each search and the best two by the colour fit are refined, and the
    colour fit chooses among the refined poses.
    """
    plain = auto.coarse_search(scan[0], chans, ph.factor, n_best=8)
    edges = auto.coarse_search(scan[0], chans, ph.factor, n_best=8, highpass=_SEARCH_HIGHPASS)
    cands = plain + edges
    if not cands:
        raise ParameterError(f"{ph.path}: the photo is too small for the scan")
    prior = [fit_metric(scan, chans, ph, c.matrix, partial=True)(c.matrix) for c in cands]
    chosen = [int(i) for i in np.argsort(prior)[::-1][:2]] + [0, len(plain)]
    cands = [cands[i] for i in dict.fromkeys(i for i in chosen if i < len(cands))]
    best: tuple[float, np.ndarray] | None = None
    for cand in cands:
        s = auto._scale(cand.matrix)
        fine, f = _fine_level(chans[cand.channel: cand.channel + 1], ph, s)
        moving = auto.smooth_for_scan(fine[0], s / f)
        try:
            m, _ = auto.refine_sitk(scan[0], moving, f, cand.matrix, "similarity")
        except RuntimeError:
            continue  # the pose drifted out of the photo
        # Mattes values of different photo channels do not compare: rank by the colour fit
        value = fit_metric(scan, chans, ph, m, partial=True)(m)
        if best is None or value > best[0]:
            best = (value, m)
    start = cands[0].matrix if best is None else best[1]
    return _refine_from(scan, chans, ph, start)


def _refine_from(scan: np.ndarray, chans: np.ndarray, ph: Photo, matrix: np.ndarray) -> np.ndarray:
    """Affine (SimpleITK, Mattes MI on the best channel), then projective (colour fit).

    The affine result is kept only if the colour fit prefers it to the start: Mattes MI of
    the one scan image can be drawn away by what the photo does not show (a smooth
    background of the scan image under thin strokes: on a development drawing the affine
    stage took a start 6 scan pixels off to 30).
    """
    s = auto._scale(matrix)
    fine, f = _fine_level(chans, ph, s)
    values = [auto.MIMetric(scan[0], fine[c], f)(matrix) for c in range(len(fine))]
    moving = auto.smooth_for_scan(fine[int(np.argmax(values))], s / f)
    del fine
    try:
        affine, _ = auto.refine_sitk(scan[0], moving, f, matrix, "affine")
    except RuntimeError:
        affine = matrix
    del moving
    metric = fit_metric(scan, chans, ph, affine)
    if metric(affine) >= metric(matrix):
        matrix = affine
    return auto.refine_projective(metric, matrix, auto._scale(matrix))
