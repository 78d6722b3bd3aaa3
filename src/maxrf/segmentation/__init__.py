"""Segment an element map into background, strokes (extended features) and particles.

:func:`segment_map` classifies every pixel of a 2-D element or peak map as

- ``0`` background: the paper or ground, the map's counting noise around a smooth level;
- ``1`` extended: strokes, lines and painted areas, features longer than a particle;
- ``2`` particle: compact bright spots (speckles, grains) standing above whatever lies
  under them, paper or stroke.

Method (all scales in pixels, thresholds in units of the map's counting noise):

1. **Noise model.** The map's variance as a function of its level, ``var = a + b * level``
   (the Poisson envelope: ``a = 0, b = 1`` for raw counts), fitted on robust (clipped)
   spreads of neighbouring-pixel differences in bins of the smoothed level. Per bin the
   direction with the smallest spread is used, so pixels on a stroke, whose differences
   along the stroke are pure noise, do not inflate it.
2. **Paper level.** Median of coarse blocks, interpolated: the smooth level of the ground.
3. **Line openings.** The map, lightly smoothed (Gaussian ``smooth``), then its 3 x 3
   maximum (a digital line may miss a thin curved stroke by a pixel) averaged over
   ``along`` pixels along each line, is opened (erosion then dilation) with line segments
   of ``line_length`` pixels at ``n_angles`` orientations. A stroke survives the opening
   along its own direction; a particle, shorter than the line in every direction, does
   not. The largest opening is the *expected level without particles*: paper, or the
   stroke under a speckle. Where two strokes cross, the best opening at least 45 degrees
   away adds the second stroke (ink adds where strokes cross), so a crossing is not a
   particle.
4. **Particles.** The residual (smoothed map minus expected level) in noise units is
   re-standardised by its own robust centre and spread over the map, made
   ``STROKE_STRICTNESS`` (1.4) times stricter on strokes, and thresholded with
   hysteresis (seed ``significance``, growth to half of it). A region is a particle when
   its summed excess over the expected level is significant (``matched_significance``;
   for raw counts also against the Poisson tail), it is no larger than a disc of
   ``max_radius`` + 1.5 px and not elongated. Rejected candidates are counted by reason.
5. **Strokes.** Pixels whose mean along the best line direction stands
   ``stroke_significance`` noise units above the paper (hysteresis), in connected regions
   longer than twice the line; within them the mask is cut at 0.4 of the local ridge
   maximum (about half the true height: the stroke's width). Particle pixels are class 2
   even on a stroke.

Known limits (see the ``verdict``/``warnings`` of a result): extended areas larger than
the paper block are read as ground; speckles closer to a stroke than about 3 px can merge
with it; the settings were chosen on synthetic drawings (benchmarks/bench_segmentation.py).

The local steps run tile by tile (with a halo), so memory stays a few bytes per pixel
whatever the map size. The computation never plots, prints or prompts.

Units: map values in the map's units (counts for element maps); positions ``[row, col]`` in
pixels, origin at the centre of the top-left pixel.
"""

from maxrf.segmentation.noise import noise_model
from maxrf.segmentation.result import BACKGROUND, CLASS_NAMES, EXTENDED, PARTICLE, Segmentation
from maxrf.segmentation.segment import segment_map
from maxrf.segmentation.store import read_segmentation, segment_datastack, write_classes_tiff

__all__ = ["BACKGROUND", "CLASS_NAMES", "EXTENDED", "PARTICLE", "Segmentation", "noise_model",
           "read_segmentation", "segment_datastack", "segment_map", "write_classes_tiff"]
