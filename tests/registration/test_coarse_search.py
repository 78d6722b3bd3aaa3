"""The coarse search finds a drawing whose scan image is dominated by what the photo does not show.

A drawing's sum image is mostly the paper's Ca, with a smooth texture the photograph does
not show (Ca is white); the ink strokes, thin and faint at the search's resolution, are
what the photo shares with the scan. Matched as it is, the sum image's smooth background
draws the normalised cross-correlation to wrong places (the table's edge, the grey card);
high-passed, the strokes lead it. Reference: the known warp of the synthetic photograph.
"""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.io.photo import read_photo
from maxrf.registration import auto, register_image
from maxrf.registration.homography import apply, scan_grid
from maxrf.synth_drawing import make_drawing
from maxrf.synth_photo import make_photo

SHAPE = (120, 160)


def _drawing(tmp_path, seed: int):
    maps, truth = make_drawing(SHAPE, seed=seed, n_strokes=30, n_speckles=40)
    pt = make_photo(truth.expected, tmp_path / f"drawing{seed}.jpg", seed=seed)
    return np.stack(list(maps.values())), pt


def _mean_error(matrix: np.ndarray, truth: np.ndarray) -> float:
    g = scan_grid(SHAPE)
    return float(np.linalg.norm(apply(np.linalg.inv(truth), apply(matrix, g)) - g, axis=1).mean())


@pytest.mark.parametrize("seed", [900, 902, 904])
def test_high_passed_search_puts_the_true_pose_first(tmp_path, seed):
    stack, pt = _drawing(tmp_path, seed)
    ph = read_photo(pt.path)
    found = auto.coarse_search(auto.normalise(stack.sum(axis=0)), auto.photo_channels(ph.image), ph.factor,
                               n_best=3, highpass=0.1)
    # within the search's resolution (a pixel of the ~160-pixel photo is 2-6 scan pixels)
    assert _mean_error(found[0].matrix, pt.matrix) < 4.0


def test_drawing_whose_plain_search_fails_registers(tmp_path):
    stack, pt = _drawing(tmp_path, 900)
    ph = read_photo(pt.path)
    plain = auto.coarse_search(auto.normalise(stack.sum(axis=0)), auto.photo_channels(ph.image), ph.factor,
                               n_best=8)
    assert min(_mean_error(c.matrix, pt.matrix) for c in plain[:3]) > 20  # the case this is about
    reg = register_image(stack.sum(axis=0), pt.path, maps=stack, label="drawing")
    g = scan_grid(SHAPE)
    err = np.linalg.norm(apply(np.linalg.inv(pt.matrix), apply(reg.matrix, g)) - g, axis=1)
    assert err.mean() < 0.5 and err.max() < 1.0
    assert reg.quality != "failed"
