"""A scan large enough to be registered through reduced levels (coarse to fine over the scan).

A synthetic drawing (fine ink strokes and speckles on paper) of 240 x 320 pixels: its shorter
side is three times the coarse level's, so the search runs on the scan reduced by 3 and the
projective refinement then at full resolution. The scan images are the drawing's Poisson
element maps, fitted separately (``maps``); the photograph is rendered from the expected
maps through a known warp.
"""

from __future__ import annotations

import numpy as np

from maxrf.registration import register_image
from maxrf.registration.homography import apply, scan_grid
from maxrf.synth_drawing import make_drawing
from maxrf.synth_photo import make_photo


def test_a_large_drawing_registers_through_the_levels_within_a_pixel(tmp_path):
    maps, truth = make_drawing((240, 320), seed=5, n_strokes=25, n_speckles=80)
    pt = make_photo(truth.expected, tmp_path / "drawing.jpg", seed=5, scale=(2.5, 3.5))
    stack = np.stack(list(maps.values()))
    reg = register_image(stack.sum(axis=0), pt.path, maps=stack, label="drawing")
    g = scan_grid((240, 320))
    err = np.linalg.norm(apply(np.linalg.inv(pt.matrix), apply(reg.matrix, g)) - g, axis=1)
    assert err.mean() < 0.5 and err.max() < 1.0
    assert reg.quality != "failed"
