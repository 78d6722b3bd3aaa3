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

Modules: ``model`` (templates and expected counts), ``truth`` (:class:`Truth`, saving and
loading it, :func:`expected_spectra`), ``painting`` (strokes, blobs, scatter, particle,
speckles), ``scan`` (:func:`make_scan`), ``spectrum`` (:func:`synth_spectrum`).
"""

from __future__ import annotations

from maxrf.synth.model import DEFAULT_ELEMENTS, DEFAULT_PILEUP
from maxrf.synth.scan import make_scan
from maxrf.synth.spectrum import synth_spectrum
from maxrf.synth.truth import Truth, expected_spectra, load_truth

__all__ = [
    "DEFAULT_ELEMENTS",
    "DEFAULT_PILEUP",
    "Truth",
    "expected_spectra",
    "load_truth",
    "make_scan",
    "synth_spectrum",
]
