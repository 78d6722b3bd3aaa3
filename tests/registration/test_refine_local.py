"""The Newton search of the projective stage (``auto.refine_local``) against a known warp."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.io.photo import read_photo
from maxrf.registration import auto, scan_image
from maxrf.registration import homography as hg
from maxrf.registration.register import fit_metric, scan_maps, scan_stack
from maxrf.synth import make_scan
from maxrf.synth_photo import make_photo


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("newton")
    truth = make_scan(d / "scan", height=64, width=80, channels=512, seed=12)
    ds = convert(d / "scan.rpl", d / "scan.datastack")
    pt = make_photo(truth.maps, d / "photo.jpg", seed=12)
    ph = read_photo(pt.path)
    scan = scan_stack(scan_image(ds)[0], scan_maps(ds))
    return scan, auto.photo_channels(ph.image), ph, pt.matrix


def _max_error(matrix: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    g = hg.scan_grid(shape)
    return float(np.linalg.norm(hg.apply(np.linalg.inv(truth), hg.apply(matrix, g)) - g, axis=1).max())


@pytest.mark.parametrize("corner_px", [[0.8, -0.6, -0.5, 0.7, 0.6, 0.4, -0.7, -0.8],
                                       [-1.2, 0.0, 0.9, -0.9, 0.3, 1.1, -0.4, 0.2]])
def test_newton_search_reaches_the_true_warp_from_a_pixel_away(fitted, corner_px):
    scan, chans, ph, truth = fitted
    shape = scan.shape[-2:]
    scale = auto._scale(truth)
    start = hg.corners_matrix(shape, truth, np.array(corner_px) * scale)
    assert _max_error(start, truth, shape) > 0.7
    metric = fit_metric(scan, chans, ph, start)
    m = auto.refine_local(metric, start, scale)
    assert _max_error(m, truth, shape) < 0.35
    # it reaches the optimum Powell's line searches reach, or higher
    powell = auto.refine_projective(metric, start, scale)
    assert metric(m) >= metric(powell) - 1e-5
