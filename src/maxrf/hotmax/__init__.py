"""The hotmax atlas: the clearest spectrum of every material in a scan.

The max spectrum (per channel, the maximum over all pixels) shows every peak that occurs
anywhere in the scan. For each of its peaks, the pixel where that peak is strongest (its
*hotmax pixel*) holds the clearest spectrum of the material causing it. The set of these
*hotmax spectra* is the hotmax atlas: a handful of spectra that tell what is in an
artwork without looking at a million of them.

Building the atlas (:func:`build_hotmax`)
-----------------------------------------
1. Peaks of the max spectrum: :func:`maxrf.peaks.find_spectrum_peaks` (``scipy.signal.
   find_peaks`` with a prominence scaled to the counting noise of the spectrum, or the
   ``prominence`` given), each moved to the highest raw channel within half a peak
   width, so the peak channel is where the max spectrum itself culminates.
2. Hotmax pixel of each peak: the per-channel argmax stored at convert
   (``DataStack.argmax_pixels[channel]``); no pass over the cube.
3. Grouping: peaks whose hotmax pixels are *the same pixel* share one spectrum (a
   single-pixel particle of brass gives the Cu and Zn peaks one spectrum). Spectra are
   sorted by their lowest-energy peak.
4. The few hotmax pixel spectra are read from the cube, each cube chunk at most once.
5. Per spectrum: a baseline (:func:`maxrf.peaks.baseline`, SNIP via pybaselines, lifted to
   the mean level of the noise by :func:`maxrf.peaks.restore_level`), the Poisson noise envelope
   ``baseline + n_sigma * sqrt(baseline)`` above it
   (:func:`maxrf.peaks.get_noise_envelope`) and the sub-peaks rising above the envelope
   (:func:`maxrf.peaks.find_subpeaks` on a copy smoothed by ``smooth`` channels, so a
   single noisy channel is not a peak).
6. Stored in the datastack as layer ``hotmax`` (schema in ``docs/ARCHITECTURE.md``).

:class:`HotmaxAtlas` reads the stored layer when present, without touching the cube, and
builds (and stores) it otherwise.

Modules: ``spectra`` (grouping the hotmax pixels, reading their spectra, baseline/envelope/
sub-peaks of one spectrum, an element's main line groups) and ``atlas``
(:class:`HotmaxAtlas`, :func:`build_hotmax`).
"""

from __future__ import annotations

from maxrf.hotmax.atlas import HotmaxAtlas, build_hotmax
from maxrf.hotmax.spectra import (
    DEFAULTS,
    LAYER,
    LAYER_VERSION,
    element_main_lines,
    group_pixels,
    read_pixel_spectra,
    spectrum_noise,
)
from maxrf.peaks import restore_level

__all__ = [
    "DEFAULTS",
    "LAYER",
    "LAYER_VERSION",
    "HotmaxAtlas",
    "build_hotmax",
    "element_main_lines",
    "group_pixels",
    "read_pixel_spectra",
    "restore_level",
    "spectrum_noise",
]
