"""Speckles: small bright regions (pigment grains, particles) in a peak or element map.

A *speckle* is a connected region (4-connectivity) of a 2-D map ``peak_map`` that lies
above a clip height chosen so that every region is small. :class:`SpeckleAtlas` scans
``n_heights`` equally spaced heights between the map's minimum and maximum, records for
each height the number of regions, the largest region's area and its label, then picks the
clip height and measures the speckles (area-ranked labels, centroids, peak intensities).

The height scan is one sweep of a union-find over the pixels sorted by height (no
re-labelling of the map per height); its results are identical to labelling
``peak_map > h`` with :func:`skimage.measure.label` (``connectivity=1``) at every height.

:func:`region_spectra` (from :mod:`maxrf.pixels`, the one home of reading chosen pixels)
reads the spectra under a mask; only the chunks that hold masked pixels are read.

Units: map values are in the map's own units (counts, or counts above the continuum for
peak maps); areas are in pixels; centroids, diameters and radii in pixels (row = y,
col = x, origin at the centre of the top-left pixel).

This module is a pure computation: it never plots, prints or prompts. Plotting
(``plot_speckles``) lives in :mod:`maxrf.plot` and uses :attr:`SpeckleAtlas.centroids_xy`
and :attr:`SpeckleAtlas.radii`.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.ndimage as ndi
import skimage.measure as skm
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from maxrf.compat import PairResult
from maxrf.errors import (
    OutputExistsError,
    OutputLocationError,
    ParameterError,
)
from maxrf.pixels import region_spectra
from maxrf.types import ArrayLike, ClientLike

if TYPE_CHECKING:
    from maxrf.store import DataStack

__all__ = [
    "SpeckleAtlas",
    "region_spectra",
    "speckle_table",
    "speckles_above_noise",
    "write_csv",
]

# Columns every speckle table has, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "label",
    "row",
    "col",
    "row_weighted",
    "col_weighted",
    "area",
    "equivalent_diameter",
    "peak",
)


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------


def _as_map(peak_map: Any, name: str = "peak_map") -> np.ndarray:
    """Return ``peak_map`` as a float64 2-D array; NaN allowed (no data), inf not."""
    try:
        arr = np.asarray(peak_map, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a 2-D numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array (rows, cols), got shape {arr.shape}")
    if arr.size == 0:
        raise ParameterError(f"{name} is empty (shape {arr.shape})")
    if np.isinf(arr).any():
        raise ParameterError(f"{name} contains infinite values")
    if np.isnan(arr).all():
        raise ParameterError(f"{name} contains only NaN values")
    return arr


def _height_levels(values: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Level of every pixel: the number of heights strictly below its value.

    A pixel is above height ``heights[k]`` (``value > heights[k]``) exactly when its level
    is ``> k``. NaN pixels get level 0 (never above any height). Computed in slices of
    the map, so no full-size int64 temporary is made.
    """
    flat = values.ravel()
    dtype = np.uint8 if heights.size < 255 else np.uint16 if heights.size < 65535 else np.int64
    levels = np.empty(flat.size, dtype=dtype)
    for s0 in range(0, flat.size, SLICE_PIXELS):
        part = flat[s0 : s0 + SLICE_PIXELS]
        nan = np.isnan(part)
        if nan.any():
            part = np.where(nan, -np.inf, part)
        levels[s0 : s0 + SLICE_PIXELS] = np.searchsorted(heights, part, side="left")
    return levels.reshape(values.shape)


#: pixels handled at once in the full-map passes and the height scan's steps: bounds their
#: temporaries (about 60 bytes a pixel) whatever the map size
SLICE_PIXELS = 2**18


_FOUR = ndi.generate_binary_structure(2, 1)  # 4-connectivity


# ---------------------------------------------------------------------------------------
# the height scan: one union-find sweep
# ---------------------------------------------------------------------------------------


def _find_roots(cparent: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Roots of components ``ids`` in the union-find forest ``cparent``, with path compression."""
    roots = cparent[ids]
    while True:
        up = cparent[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    cparent[ids] = roots
    return roots


class _Forest:
    """Union-find forest of the regions: parent, size and first raster pixel per component,
    in arrays that grow as components are created (usually far fewer than pixels)."""

    def __init__(self, n_pixels: int, idt: type):
        self.idt = idt
        cap = max(16, min(n_pixels, 2**16))
        self.parent = np.zeros(cap, dtype=idt)
        self.size = np.zeros(cap, dtype=idt)
        self.first = np.zeros(cap, dtype=idt)
        self.n = 0

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= self.parent.size:
            return
        cap = max(need, 2 * self.parent.size)
        for name in ("parent", "size", "first"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=self.idt)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)


def _height_scan(levels: np.ndarray, n_heights: int, step_pixels: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number of regions, largest area and its label for every height, in one sweep.

    Parameters
    ----------
    levels : ndarray of int, shape (H, W)
        Pixel levels from :func:`_height_levels`; pixel ``p`` is foreground at height
        index ``k`` when ``levels[p] > k``.
    n_heights : int
        Number of heights.
    step_pixels : int, optional
        Entering pixels handled per step (default :data:`SLICE_PIXELS`); bounds the
        temporaries. The result does not depend on it.

    Returns
    -------
    n_regions, largest_areas, largest_labels : ndarray of int64, shape (n_heights,)
        For height ``k``: the number of 4-connected regions of ``levels > k``, the area
        (pixels) of the largest one and the label :func:`skimage.measure.label` gives it
        (labels follow the raster order of each region's first pixel; ties in area go to
        the smaller label). ``0, 0, 0`` where the foreground is empty.

    Notes
    -----
    Heights are visited from the top down. At height ``k`` the pixels of level ``k + 1``
    enter, in raster order and in steps of at most ``step_pixels``; the regions they form
    with each other and with the regions already present (including those of earlier
    steps of the same level) are found with
    :func:`scipy.sparse.csgraph.connected_components` on a small graph whose nodes are
    the entering pixels and the existing regions they touch. Existing regions are kept in
    a union-find forest (merged regions point to the region that absorbed them). Every
    pixel is handled once, when it enters, so the sweep costs O(H W) plus O(n_heights)
    small calls, instead of labelling the whole map ``n_heights`` times. Memory: the
    levels, 4 bytes of component per pixel, 1 byte of "first pixel" flag, the forest,
    and the temporaries of one step.
    """
    H, W = levels.shape
    N = H * W
    step = int(step_pixels or SLICE_PIXELS)
    idt = np.int32 if N < 2**31 - 1 else np.int64
    lf = levels.ravel()

    pix_comp = np.full(N, -1, dtype=idt)  # component a pixel entered with
    alive_first = np.zeros(N, dtype=bool)  # raster index is the first pixel of a live region
    forest = _Forest(N, idt)
    n_alive = 0
    best = -1  # live component with the largest area (ties: smallest first pixel)

    n_regions = np.zeros(n_heights, dtype=np.int64)
    largest_areas = np.zeros(n_heights, dtype=np.int64)
    largest_labels = np.zeros(n_heights, dtype=np.int64)
    top = int(lf.max()) if N else 0

    for k in range(n_heights - 1, -1, -1):
        lvl = k + 1
        level_pixels = np.flatnonzero(lf == lvl) if lvl <= top else np.zeros(0, np.int64)
        for s0 in range(0, level_pixels.size, step):
            new = level_pixels[s0 : s0 + step].astype(idt)  # ascending raster order
            lo, hi = int(new[0]), int(new[-1])  # this step holds every level pixel in lo..hi
            m = new.size
            r = new // W
            c = new - r * W
            e_src: list[np.ndarray] = []
            e_dst: list[np.ndarray] = []
            o_src: list[np.ndarray] = []
            o_pix: list[np.ndarray] = []
            for valid, off in ((c < W - 1, 1), (r < H - 1, W), (c > 0, -1), (r > 0, -W)):
                idx = np.flatnonzero(valid)
                nb = new[idx] + idt(off)
                ln = lf[nb]
                same = ln == lvl
                if off > 0:  # entering-entering edges of this step: right and down suffice
                    sel = same & (nb <= hi)
                    e_src.append(idx[sel])
                    e_dst.append(np.searchsorted(new, nb[sel]))
                    old = ln > lvl  # same-level pixels after hi enter in a later step
                else:  # left and up: same-level pixels before lo entered in an earlier step
                    old = (ln > lvl) | (same & (nb < lo))
                o_src.append(idx[old])
                o_pix.append(nb[old])
            old_src = np.concatenate(o_src)
            old_pix = np.concatenate(o_pix)
            roots = _find_roots(forest.parent, pix_comp[old_pix])
            pix_comp[old_pix] = roots
            uroots, inv = np.unique(roots, return_inverse=True)
            n_old = uroots.size
            n_nodes = m + n_old
            src = np.concatenate([*e_src, old_src]).astype(idt, copy=False)
            dst = np.concatenate([*e_dst, m + inv.ravel()]).astype(idt, copy=False)
            del e_src, e_dst, o_src, o_pix, old_src, old_pix, roots, inv, r, c
            graph = coo_matrix(
                (np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes)
            ).tocsr()
            del src, dst
            ncc, lab = connected_components(graph, directed=False)
            del graph
            lab_new = lab[:m]
            lab_old = lab[m:]
            forest.reserve(ncc)
            ids = forest.n + np.arange(ncc, dtype=idt)
            size = np.bincount(lab_new, minlength=ncc).astype(np.int64)
            if n_old:
                size += np.bincount(lab_old, weights=forest.size[uroots],
                                    minlength=ncc).astype(np.int64)
            first = np.full(ncc, N, dtype=np.int64)
            np.minimum.at(first, lab_new, new)
            if n_old:
                np.minimum.at(first, lab_old, forest.first[uroots])
                forest.parent[uroots] = ids[lab_old]
                alive_first[forest.first[uroots]] = False
            forest.parent[ids] = ids
            forest.size[ids] = size
            forest.first[ids] = first
            alive_first[first] = True
            pix_comp[new] = ids[lab_new]
            forest.n += ncc
            n_alive += ncc - n_old

            # largest live region: the previous best if it is still live, or a new one
            # (a region that absorbed the previous best is strictly larger than it).
            j = np.lexsort((first, -size))[0]
            keep = best >= 0 and forest.parent[best] == best
            if not keep or (size[j], -first[j]) > (forest.size[best], -forest.first[best]):
                best = int(ids[j])
        n_regions[k] = n_alive
        if n_alive:
            largest_areas[k] = forest.size[best]
            largest_labels[k] = 1 + np.count_nonzero(alive_first[: forest.first[best]])
    return n_regions, largest_areas, largest_labels


# ---------------------------------------------------------------------------------------
# the atlas
# ---------------------------------------------------------------------------------------


class SpeckleAtlas:
    """Height scan of a map and the speckles above its clip height.

    Parameters
    ----------
    peak_map : array_like, shape (H, W)
        A peak or element map (any units; NaN marks pixels without data, they never
        belong to a region).
    n_heights : int, optional
        Number of heights scanned, equally spaced from the map's minimum to its maximum
        (both included). Default 100.
    particles_only : bool, optional
        Measure only the particle class of :func:`maxrf.segmentation.segment_map` (run on
        the map): strokes and paper are treated as pixels without data, so a stroke is never
        cut into speckles. Default False (the seed's behaviour: the whole map).
    segmentation : maxrf.segmentation.Segmentation, optional
        A segmentation of this map to restrict the atlas to its particles (implies
        ``particles_only``).

    Attributes
    ----------
    peak_map : ndarray of float64, shape (H, W)
    heights : ndarray of float64, shape (n_heights,)
        Scanned heights (map units).
    n_regions : ndarray of int64, shape (n_heights,)
        Number of 4-connected regions of ``peak_map > heights[k]``.
    largest_areas : ndarray of int64, shape (n_heights,)
        Area (pixels) of the largest of those regions (0 if there is none).
    largest_labels : ndarray of int64, shape (n_heights,)
        Label of that region as :func:`skimage.measure.label` (``connectivity=1``) numbers
        the regions of ``peak_map > heights[k]`` (0 if there is none; ties in area go to
        the smaller label).

    The following are set by :meth:`measure_speckles` (``None`` before):

    clip_height : float
        The chosen clip height (map units); ``clip_height_i`` is its index in ``heights``.
    relabel_image : ndarray of int32, shape (H, W)
        Speckle labels of ``peak_map > clip_height`` (4-connectivity), ranked by area:
        1 = largest, areas non-increasing with the label, 0 = background. Equal areas keep
        the raster order of their first pixel.
    props : list of skimage.measure.RegionProperties
        ``skimage.measure.regionprops(relabel_image, intensity_image=peak_map)``;
        ``props[i]`` is speckle label ``i + 1`` (0-based index, as in maxrf4u's
        ``props[speckle_i]``). Built lazily on first access.
    areas : ndarray of int64, shape (n_speckles,)
        Area (pixels) of speckle ``i + 1`` at index ``i``.
    peaks : ndarray of float64, shape (n_speckles,)
        Maximum of ``peak_map`` over each speckle (map units).
    centroids_rc : ndarray of float64, shape (n_speckles, 2)
        Geometric centroid ``[row, col]`` (pixels) of each speckle (as ``props[i].centroid``).
    centroids_xy : ndarray of float64, shape (n_speckles, 2)
        The same as ``[x, y] = [col, row]`` (maxrf4u's convention, for plotting).
    centroids_y, centroids_x : ndarray of float64, shape (n_speckles,)
        Seed names for the row and column centroids.
    weighted_centroids_rc : ndarray of float64, shape (n_speckles, 2)
        Centroid ``[row, col]`` weighted by ``peak_map - clip_height``; less sensitive to
        noise pixels on a speckle's rim than the geometric centroid.

    Notes
    -----
    The heights scan is a single top-down union-find sweep (see :func:`_height_scan`), not
    a labelling per height; it gives exactly the counts and areas of the per-height
    labelling.
    """

    def __init__(self, peak_map: Any, n_heights: int = 100, *, particles_only: bool = False,
                 segmentation: Any = None):
        if isinstance(n_heights, bool) or not isinstance(n_heights, (int, np.integer)):
            raise ParameterError(f"n_heights must be an integer >= 1, got {n_heights!r}")
        if n_heights < 1:
            raise ParameterError(f"n_heights must be an integer >= 1, got {n_heights}")
        self.peak_map = _as_map(peak_map)
        #: the Segmentation whose particle class the atlas measures (None: the whole map)
        self.segmentation = _particle_segmentation(self.peak_map, particles_only, segmentation)
        if self.segmentation is not None:  # strokes and paper become "no data"
            self.peak_map[~self.segmentation.particle_mask] = np.nan
        self.n_heights = int(n_heights)
        self.heights = np.linspace(
            np.nanmin(self.peak_map), np.nanmax(self.peak_map), self.n_heights
        )
        self._levels = _height_levels(self.peak_map, self.heights)
        self.n_regions, self.largest_areas, self.largest_labels = _height_scan(
            self._levels, self.n_heights
        )
        self.max_area: float | None = None
        self.clip_height_i: int | None = None
        self.clip_height: float | None = None
        self.relabel_image: np.ndarray | None = None
        self._props: list | None = None
        self.areas: np.ndarray | None = None
        self.peaks: np.ndarray | None = None
        self.centroids_rc: np.ndarray | None = None
        self.weighted_centroids_rc: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Map shape ``(H, W)`` in pixels."""
        return self.peak_map.shape  # type: ignore[return-value]

    # -- clip height and speckle measurement ------------------------------------------

    def measure_speckles(self, max_area: float = 100) -> float:
        """Choose the clip height and measure the speckles above it.

        The clip height is the LOWEST scanned height at which every region of
        ``peak_map > height`` has an area of at most ``max_area`` pixels. The largest area
        never grows with the height, so every higher height qualifies too; the top height
        (the map maximum) always qualifies, with no region at all. If no height qualifies
        (only possible with ``n_heights == 1``), the height with the smallest largest area
        is used.

        (maxrf4u picked ``argmin((largest_areas - max_area) ** 2)``, the height whose
        largest region is closest to ``max_area`` in size; that can pick a height where a
        region is larger than ``max_area``, against its documented intent.)

        Parameters
        ----------
        max_area : float, optional
            Largest allowed speckle area, pixels (> 0). Default 100.

        Returns
        -------
        float
            The clip height (map units), also stored as ``self.clip_height``.
        """
        if isinstance(max_area, bool) or not isinstance(max_area, (int, float, np.number)):
            raise ParameterError(f"max_area must be a number of pixels > 0, got {max_area!r}")
        if not max_area > 0:
            raise ParameterError(f"max_area must be a number of pixels > 0, got {max_area}")
        ok = np.flatnonzero(self.largest_areas <= max_area)
        i = (
            int(ok[0])
            if ok.size
            else int(np.flatnonzero(self.largest_areas == self.largest_areas.min())[0])
        )
        self.max_area = float(max_area)
        self.clip_height_i = i
        self.clip_height = float(self.heights[i])

        # == peak_map > clip_height (NaN excluded); labels in raster order of first pixel,
        # as skimage.measure.label(connectivity=1), in int32 and relabelled in place
        image, n = ndi.label(self._levels > i, structure=_FOUR, output=np.int32)
        flat = image.reshape(-1)
        fg = np.flatnonzero(flat)  # only the speckle pixels are measured below
        lab = flat[fg]
        area_unsorted = np.bincount(lab, minlength=n + 1)[1:]
        rank = np.argsort(-area_unsorted, kind="stable")  # new label j + 1 <- old rank[j] + 1
        lut = np.zeros(n + 1, dtype=np.int32)
        lut[rank + 1] = np.arange(1, n + 1, dtype=np.int32)
        lab = lut[lab]
        flat[fg] = lab
        self.relabel_image = image
        self._props = None  # built on first access (costly for 1e5 speckles)

        # vectorised per-speckle measurements (same values as the regionprops ones)
        H, W = self.shape
        rows, cols = np.divmod(fg, W)
        areas = np.bincount(lab, minlength=n + 1)[1:]
        self.areas = areas.astype(np.int64)
        values = self.peak_map.reshape(-1)[fg]
        with np.errstate(invalid="ignore", divide="ignore"):
            cr = np.bincount(lab, weights=rows, minlength=n + 1)[1:] / areas
            cc = np.bincount(lab, weights=cols, minlength=n + 1)[1:] / areas
            w = values - self.clip_height
            sw = np.bincount(lab, weights=w, minlength=n + 1)[1:]
            wr = np.bincount(lab, weights=w * rows, minlength=n + 1)[1:] / sw
            wc = np.bincount(lab, weights=w * cols, minlength=n + 1)[1:] / sw
        self.centroids_rc = np.c_[cr, cc].reshape(n, 2)
        self.weighted_centroids_rc = np.c_[wr, wc].reshape(n, 2)
        peaks = np.full(n, -np.inf)
        np.maximum.at(peaks, lab - 1, values)
        self.peaks = peaks
        return self.clip_height

    def _require_measured(self) -> None:
        if self.relabel_image is None:
            raise ParameterError("no speckles measured yet: call measure_speckles() first")

    @property
    def props(self) -> list | None:
        """``regionprops(relabel_image, intensity_image=peak_map)``; ``props[i]`` = label ``i+1``.

        Built on first access and cached; ``None`` before :meth:`measure_speckles`.
        """
        if self.relabel_image is None:
            return None
        if self._props is None:
            self._props = skm.regionprops(self.relabel_image, intensity_image=self.peak_map)
        return self._props

    @property
    def n_speckles(self) -> int:
        """Number of speckles (0 before :meth:`measure_speckles`)."""
        return 0 if self.areas is None else int(self.areas.size)

    @property
    def labels(self) -> np.ndarray:
        """Speckle labels ``1 .. n_speckles`` (int64)."""
        return np.arange(1, self.n_speckles + 1, dtype=np.int64)

    @property
    def centroids_xy(self) -> np.ndarray:
        """Centroids ``[x, y] = [col, row]`` (pixels), shape (n_speckles, 2)."""
        self._require_measured()
        return self.centroids_rc[:, ::-1].copy()

    @property
    def centroids_y(self) -> np.ndarray:
        """Row (y) centroids, pixels (maxrf4u's name)."""
        self._require_measured()
        return self.centroids_rc[:, 0].copy()

    @property
    def centroids_x(self) -> np.ndarray:
        """Column (x) centroids, pixels (maxrf4u's name)."""
        self._require_measured()
        return self.centroids_rc[:, 1].copy()

    @property
    def equivalent_diameters(self) -> np.ndarray:
        """Diameter (pixels) of the disc with each speckle's area: ``sqrt(4 area / pi)``."""
        self._require_measured()
        return np.sqrt(4.0 * self.areas / np.pi)

    @property
    def radii(self) -> np.ndarray:
        """Half the equivalent diameter (pixels): a circle radius for plotting speckles."""
        return self.equivalent_diameters / 2.0

    def speckle_mask(self, speckle_i: int) -> np.ndarray:
        """Full-size boolean mask (H, W) of speckle ``speckle_i`` (0-based: label ``+ 1``)."""
        self._require_measured()
        i = self._check_index(speckle_i)
        return self.relabel_image == i + 1

    def _check_index(self, speckle_i: int) -> int:
        if isinstance(speckle_i, bool) or not isinstance(speckle_i, (int, np.integer)):
            raise ParameterError(f"speckle_i must be an integer index, got {speckle_i!r}")
        n = self.n_speckles
        if not 0 <= speckle_i < n:
            raise ParameterError(
                f"speckle_i={speckle_i} is out of range: there are {n} speckles "
                f"(0-based indices 0..{n - 1}, speckle_i selects label speckle_i + 1)"
            )
        return int(speckle_i)

    def speckle_spectrum(self, arr: ArrayLike, speckle_i: int, client: ClientLike = None) -> np.ndarray:
        """Mean spectrum of one speckle.

        Parameters
        ----------
        arr : ndarray or dask.array.Array, shape (H, W, C)
            Spectral cube (counts per channel) with the map's pixel grid.
        speckle_i : int
            0-based speckle index: ``props[speckle_i]``, i.e. label ``speckle_i + 1``.
        client : dask.distributed.Client or str, optional
            Read on this cluster (see :func:`region_spectra`).

        Returns
        -------
        ndarray of float64, shape (C,)
            Mean counts per channel over the speckle's pixels. Unlike maxrf4u (which passed
            the bounding-box-local ``props[i].image`` and so averaged the wrong pixels),
            the full-size mask of the label is used.
        """
        return region_spectra(arr, self.speckle_mask(speckle_i), average=True, client=client)


def _particle_segmentation(peak_map: np.ndarray, particles_only: bool, segmentation: Any) -> Any:
    """The segmentation restricting an atlas to particles, checked, or None."""
    if segmentation is None and not particles_only:
        return None
    from maxrf.segmentation import Segmentation, segment_map

    if segmentation is None:
        return segment_map(peak_map)
    if not isinstance(segmentation, Segmentation):
        raise ParameterError(f"segmentation must be a maxrf Segmentation, got {type(segmentation)}")
    if segmentation.classes.shape != peak_map.shape:
        raise ParameterError(f"segmentation has shape {segmentation.classes.shape}, "
                             f"the map has {peak_map.shape}")
    if not segmentation.particle_mask.any():
        raise ParameterError("the segmentation has no particle: nothing for the atlas to measure")
    return segmentation


# ---------------------------------------------------------------------------------------
# noise, table, csv
# ---------------------------------------------------------------------------------------


def _noise_level(peak_map: Any) -> float:
    """Robust estimate of the pixel noise (standard deviation, map units) of a map.

    The median absolute deviation (MAD) of the differences between horizontally and
    vertically adjacent pixels, scaled to a Gaussian standard deviation:
    ``1.4826 * MAD(d) / sqrt(2)``. Differencing removes a smooth background (paper,
    gradual paint layers), and the median ignores the few differences at speckles and
    region edges. For independent pixel noise (counting noise) this is the per-pixel
    standard deviation. If the MAD is 0 (e.g. integer maps of mostly identical counts) the
    standard deviation of the differences is used instead.
    """
    m = _as_map(peak_map)
    H, W = m.shape
    nh, nv = H * (W - 1), (H - 1) * W
    d = np.empty(nh + nv)  # all differences in one buffer, worked on in place
    np.subtract(m[:, 1:], m[:, :-1], out=d[:nh].reshape(H, W - 1))
    np.subtract(m[1:], m[:-1], out=d[nh:].reshape(H - 1, W))
    finite = np.isfinite(d)
    if not finite.all():
        d = d[finite]
    del finite
    if d.size == 0:
        return 0.0
    n = d.size
    mean = float(d.sum()) / n
    var = max(float(np.dot(d, d)) / n - mean * mean, 0.0)  # for the MAD = 0 fallback
    med = np.median(d, overwrite_input=True)
    np.subtract(d, med, out=d)
    np.abs(d, out=d)
    mad = np.median(d, overwrite_input=True)
    if mad > 0:
        return float(1.482602218505602 * mad / math.sqrt(2.0))
    return float(math.sqrt(var) / math.sqrt(2.0))


def speckles_above_noise(
    atlas: SpeckleAtlas,
    noise_level: float | None = None,
    factor: float = 3.0,
    baseline: float = 0.0,
) -> np.ndarray:
    """Labels of the speckles whose peak stands above the noise.

    A speckle is kept when ``peak - baseline > factor * noise_level``, with ``peak`` the
    maximum of the map over the speckle.

    Parameters
    ----------
    atlas : SpeckleAtlas
        An atlas after :meth:`SpeckleAtlas.measure_speckles`.
    noise_level : float, optional
        Pixel noise (standard deviation, map units). Default: a robust estimate from the
        map itself (MAD of neighbour differences, see :func:`_noise_level`).
    factor : float, optional
        Threshold in units of the noise level. Default 3. Note that a map of pure
        Gaussian noise has about 0.13 % of its pixels above 3 sigma, so on a large
        map some noise speckles pass ``factor=3``; use 4-5 for a cleaner selection.
    baseline : float, optional
        Map value of the empty background (map units). Default 0, right for peak maps
        (counts above the continuum).

    Returns
    -------
    ndarray of int64
        Speckle labels (1-based, ascending = decreasing area) that pass.
    """
    atlas._require_measured()
    if noise_level is None:
        noise_level = _noise_level(atlas.peak_map)
    for name, val in (("noise_level", noise_level), ("factor", factor), ("baseline", baseline)):
        if isinstance(val, bool) or not isinstance(val, (int, float, np.number)):
            raise ParameterError(f"{name} must be a number, got {val!r}")
        if not np.isfinite(val):
            raise ParameterError(f"{name} must be finite, got {val}")
    if noise_level < 0 or factor < 0:
        raise ParameterError(
            f"noise_level and factor must be >= 0, got noise_level={noise_level}, factor={factor}"
        )
    keep = atlas.peaks - baseline > factor * noise_level
    return atlas.labels[keep]


def speckle_table(
    atlas: SpeckleAtlas,
    element_maps: Mapping[str, ArrayLike] | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Table of speckle measurements, as a dict of equal-length columns.

    Parameters
    ----------
    atlas : SpeckleAtlas
        An atlas after :meth:`SpeckleAtlas.measure_speckles`.
    element_maps : mapping of str to array_like (H, W), optional
        Maps with the atlas's pixel grid (e.g. ``{'Fe': fe_map, 'Pb': pb_map}``); each adds a
        column with the map's mean over every speckle (map units; NaN pixels ignored).
    labels : sequence of int, optional
        Speckle labels (1-based) to include, in the given order, e.g. the output of
        :func:`speckles_above_noise`. Default: all speckles, by label.

    Returns
    -------
    dict of str to ndarray
        Columns ``label`` (int), ``row``, ``col`` (geometric centroid, pixels),
        ``row_weighted``, ``col_weighted`` (centroid weighted by height above the clip
        height, pixels), ``area`` (int, pixels), ``equivalent_diameter`` (pixels),
        ``peak`` (map maximum over the speckle, map units), then one column per element
        map, named by its key. Suitable for ``DataStack.write_layer('speckles', table)``
        and :func:`write_csv`.
    """
    atlas._require_measured()
    n = atlas.n_speckles
    if labels is None:
        lab = atlas.labels
    else:
        lab = np.asarray(labels)
        if lab.ndim != 1 or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
            raise ParameterError("labels must be a 1-D sequence of integer speckle labels")
        lab = lab.astype(np.int64)
        bad = lab[(lab < 1) | (lab > n)]
        if bad.size:
            raise ParameterError(
                f"labels {bad[:5].tolist()} are not speckle labels (valid: 1..{n})"
            )
    idx = lab - 1
    table: dict[str, np.ndarray] = {
        "label": lab.copy(),
        "row": atlas.centroids_rc[idx, 0],
        "col": atlas.centroids_rc[idx, 1],
        "row_weighted": atlas.weighted_centroids_rc[idx, 0],
        "col_weighted": atlas.weighted_centroids_rc[idx, 1],
        "area": atlas.areas[idx],
        "equivalent_diameter": atlas.equivalent_diameters[idx],
        "peak": atlas.peaks[idx],
    }
    if element_maps:
        flat = atlas.relabel_image.reshape(-1)
        fg = np.flatnonzero(flat)  # speckle pixels: the only ones a column needs
        lab_fg = flat[fg]
        for name, emap in element_maps.items():  # one map in memory at a time
            key = str(name)
            if key in table:
                raise ParameterError(
                    f"element map name {key!r} clashes with a standard table column"
                )
            arr = _as_map_allow_inf(emap, f"element_maps[{key!r}]")
            if arr.shape != atlas.shape:
                raise ParameterError(
                    f"element_maps[{key!r}] has shape {arr.shape}, the atlas map has {atlas.shape}"
                )
            vals = arr.reshape(-1)[fg].astype(np.float64)
            del arr
            ok = np.isfinite(vals)
            s = np.bincount(lab_fg[ok], weights=vals[ok], minlength=n + 1)[1:]
            cnt = np.bincount(lab_fg[ok], minlength=n + 1)[1:]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
            table[key] = mean[idx]
    return table


def _as_map_allow_inf(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiub":
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a 2-D numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array, got shape {arr.shape}")
    return arr


def write_csv(
    table: Mapping[str, ArrayLike], path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a speckle table (dict of equal-length columns) as CSV, one row per speckle.

    Parameters
    ----------
    table : mapping of str to 1-D array_like
        E.g. from :func:`speckle_table`; the header is the column names in order.
    path : str or os.PathLike
        Output file.
    overwrite : bool, optional
        Replace an existing file. Default False (raise :class:`OutputExistsError`).

    Returns
    -------
    pathlib.Path
        The written file. Floats are written with 10 significant digits.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputLocationError("the output folder does not exist", path.parent)
    if path.exists() and not overwrite:
        raise OutputExistsError("file exists (pass overwrite=True to replace it)", path)
    names = [str(k) for k in table]
    cols = [np.asarray(v) for v in table.values()]
    lengths = {c.shape[0] if c.ndim else -1 for c in cols}
    if any(c.ndim != 1 for c in cols) or len(lengths) > 1:
        raise ParameterError("table columns must be 1-D arrays of equal length", path)
    n = cols[0].shape[0] if cols else 0

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return format(float(v), ".10g")
        if isinstance(v, np.integer):
            return str(int(v))
        return str(v)

    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for r in range(n):
                writer.writerow([fmt(c[r]) for c in cols])
        os.replace(tmp, path)
    except OSError as exc:  # permission, read-only, full, vanished: one line
        from maxrf.outputs import os_error

        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise os_error(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------- DataStack glue
def window_map(ds: DataStack, window: tuple[float, float], client: ClientLike = None
               ) -> tuple[np.ndarray, str]:
    """The peak map (seed formula, counts per channel) of an energy window, one pass.

    Parameters
    ----------
    ds : DataStack
        A calibrated datastack.
    window : (float, float)
        Low and high energy of the window, keV.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W)`` float map.
    source : str
        ``'window 10.30-10.80 keV'``.
    """
    from maxrf import engine
    from maxrf.errors import ParameterError
    from maxrf.maps import PeakSliceMaps

    e = np.asarray(ds.energies(), dtype=float)
    lo, hi = (int(np.searchsorted(e, float(v))) for v in window)
    hi = min(hi, e.size - 1)
    if hi - lo < 2:
        raise ParameterError(f"--window {window[0]}:{window[1]} keV holds fewer than 3 channels "
                             f"of this scan ({e[0]:.2f}-{e[-1]:.2f} keV)")
    red = PeakSliceMaps([[lo, (lo + hi) // 2, hi]], e, kev_maps=False)
    out = engine.run(ds.block_source(), {"window": red}, client=client, description="window map")
    return np.asarray(out["window"][0]), f"window {e[lo]:.2f}-{e[hi]:.2f} keV"


def element_map_of(ds: DataStack, element: str) -> tuple[np.ndarray, str]:
    """The map of ``element`` from a datastack's layers, and where it came from.

    The fitted/window element map (layer ``element_maps``) when it has the element, else the
    peak map (layer ``peak_maps``) whose peak lies nearest the element's Kα (or Lα) line
    within 0.1 keV.

    Raises
    ------
    LayerMissingError
        If neither layer holds a map of the element (run ``maxrf maps`` first).
    """
    from maxrf.errors import LayerMissingError
    from maxrf.physics import line_energy

    layers = ds.layers
    if "element_maps" in layers:
        layer = ds.read("element_maps", lazy=True)  # reads only the map asked for
        elements = list(layer.attrs.get("elements", []))
        if element in elements:
            return layer["maps"][elements.index(element)], f"element map ({layer.attrs.get('method')})"
    if "peak_maps" in layers:
        layer = ds.read("peak_maps", lazy=True)
        for line in ("Ka", "La"):
            try:
                keV = line_energy(element, line)
            except Exception:  # noqa: BLE001 - element without that line family
                continue
            peaks = np.asarray(layer["peaks_keV"])
            if peaks.size and np.min(np.abs(peaks - keV)) < 0.1:
                i = int(np.argmin(np.abs(peaks - keV)))
                return layer["maps"][i], f"peak map {i} at {peaks[i]:.2f} keV"
    raise LayerMissingError(
        f"no map of {element}: run 'maxrf maps --elements {element}' first", ds.path
    )


class _StoredMaps(Mapping):
    """``{element: map}`` over a lazily read ``element_maps`` layer: a map is read when asked
    for, so a table over many elements holds one map at a time."""

    def __init__(self, layer: Any):
        self._maps = layer["maps"]
        self._elements = [str(el) for el in layer.attrs.get("elements", [])]

    def __getitem__(self, element: str) -> np.ndarray:
        try:
            return self._maps[self._elements.index(element)]
        except ValueError:
            raise KeyError(element) from None

    def __iter__(self):
        return iter(self._elements)

    def __len__(self) -> int:
        return len(self._elements)


@dataclass
class SpeckleResult(PairResult):
    """What :func:`find_speckles` found; unpacks as maxrf4u's ``atlas, table``.

    Attributes
    ----------
    atlas : SpeckleAtlas
        The segmentation of the element's map.
    table : dict of str to ndarray
        One row per kept speckle: label, centroid, area, peak and the mean of every
        element map over the speckle.
    element : str
        The element whose map was segmented.
    stored : bool
        Whether the layer ``speckles`` was written.
    """

    atlas: SpeckleAtlas
    table: dict[str, np.ndarray]
    element: str
    stored: bool
    _pair = ("atlas", "table")


def find_speckles(
    ds: DataStack,
    element: str = "Fe",
    *,
    max_area: float = 100,
    n_heights: int = 100,
    factor: float = 3.0,
    store: bool = True,
    window: tuple[float, float] | None = None,
) -> SpeckleResult:
    """Segment the speckles of one element's map and measure them (layer ``speckles``).

    The element must have evidence in the stored identification (present or possible,
    :func:`maxrf.evidence.require_evidence`): a peak window near the element's line on a
    scan without it would be another element's map. ``window`` segments an explicit
    energy window instead, whatever the identification says.

    Parameters
    ----------
    ds : DataStack
        A datastack with element or peak maps.
    element : str
        Element whose map is segmented (default Fe, the paper speckles).
    max_area : float
        Largest speckle area (pixels) at the clip height (see :meth:`SpeckleAtlas.measure_speckles`).
    n_heights : int
        Height levels of the scan.
    factor : float
        Keep speckles whose peak exceeds ``factor`` x the map's noise level.
    store : bool
        Write the layer ``speckles`` to the datastack.
    window : (float, float), optional
        Segment the peak map of this energy window (keV, low and high) instead of the
        element's map; ``element`` then only names the result.

    Returns
    -------
    SpeckleResult
        ``.atlas`` and ``.table`` (one row per kept speckle); ``atlas, table = ...`` works.
    """
    maps: Mapping[str, Any] = {}
    if "element_maps" in ds.layers:  # the table's columns, read one map at a time
        maps = _StoredMaps(ds.read("element_maps", lazy=True))
    if window is not None:
        image, source = window_map(ds, window)
    else:
        from maxrf.evidence import require_evidence

        require_evidence(ds, element, "speckles")
        image, source = element_map_of(ds, element)
    atlas = SpeckleAtlas(image, n_heights=n_heights)
    del image  # the atlas holds its float64 copy
    clip = atlas.measure_speckles(max_area=max_area)
    noise = _noise_level(atlas.peak_map)
    keep = speckles_above_noise(atlas, noise, factor=factor)
    table = speckle_table(atlas, maps, labels=keep)
    if store:
        labels = np.where(np.isin(atlas.relabel_image, keep), atlas.relabel_image, 0).astype(np.int32)
        ds.write_layer(
            "speckles",
            {"labels": labels,
             "centroids": np.c_[table["row"], table["col"]] if len(keep) else np.zeros((0, 2)),
             "areas": np.asarray(table["area"], dtype=np.float64),
             "peak_intensity": np.asarray(table["peak"], dtype=np.float64)},
            {"element": element, "source": source, "clip_height": float(clip),
             "max_area": max_area, "noise_level": noise, "factor": factor,
             "table": [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in table.items()}
                       for i in range(len(keep))]},
        )
    return SpeckleResult(atlas, table, element, bool(store))
