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

This package is a pure computation: it never plots, prints or prompts. Plotting
(``plot_speckles``) lives in :mod:`maxrf.plot` and uses :attr:`SpeckleAtlas.centroids_xy`
and :attr:`SpeckleAtlas.radii`.

Modules: ``heights`` (the one-sweep height scan), ``atlas`` (:class:`SpeckleAtlas`),
``table`` (noise level, speckles above it, the table and its CSV), ``datastack`` (the map
of an element or energy window of a DataStack, :func:`find_speckles` and its layer).
"""

from __future__ import annotations

from maxrf.pixels import region_spectra
from maxrf.speckles.atlas import SpeckleAtlas
from maxrf.speckles.datastack import SpeckleResult, element_map_of, find_speckles, window_map
from maxrf.speckles.heights import SLICE_PIXELS
from maxrf.speckles.table import (
    TABLE_COLUMNS,
    speckle_table,
    speckles_above_noise,
    write_csv,
)

__all__ = [
    "SLICE_PIXELS",
    "TABLE_COLUMNS",
    "SpeckleAtlas",
    "SpeckleResult",
    "element_map_of",
    "find_speckles",
    "region_spectra",
    "speckle_table",
    "speckles_above_noise",
    "window_map",
    "write_csv",
]
