"""The speckle atlas: the height scan of a map, the clip height and the speckles above it."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.ndimage as ndi
import skimage.measure as skm

from maxrf.errors import ParameterError
from maxrf.pixels import region_spectra
from maxrf.speckles.heights import _FOUR, _as_map, _height_levels, _height_scan
from maxrf.types import ArrayLike, ClientLike


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
