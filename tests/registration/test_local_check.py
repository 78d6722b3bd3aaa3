"""The local-alignment check against the known warp of a synthetic photograph."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.io.photo import read_photo
from maxrf.registration import auto, scan_image
from maxrf.registration import homography as hg
from maxrf.registration.local_check import local_alignment
from maxrf.registration.register import scan_maps, scan_stack
from maxrf.registration.result import Registration
from maxrf.registration.verdict import judge
from maxrf.synth import make_scan
from maxrf.synth_photo import make_photo


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(scan images, photo channels, photo, true matrix) of seed 14.

    The scan images are those the registration fits: the sum image and the channel bands.
    The check is conservative: at the true warp it reads 0.3-0.6 px on most dev seeds and
    past 0.8 px on about one in eight (seed 2), which makes such a result doubtful, never
    wrongly good.
    """
    d = tmp_path_factory.mktemp("local")
    truth = make_scan(d / "scan", height=48, width=60, channels=1024, seed=14)
    ds = convert(d / "scan.rpl", d / "scan.datastack")
    pt = make_photo(truth.maps, d / "photo.jpg", seed=14)
    img, _ = scan_image(ds)
    ph = read_photo(pt.path)
    return scan_stack(img, scan_maps(ds)), auto.photo_channels(ph.image), ph, pt.matrix


def _max_error(matrix: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    g = hg.scan_grid(shape)
    return float(np.linalg.norm(hg.apply(np.linalg.inv(truth), hg.apply(matrix, g)) - g, axis=1).max())


def _perturbed(truth: np.ndarray, shape: tuple[int, int], corner: int, dist: float) -> np.ndarray:
    """The true warp with one scan corner moved by ``dist`` scan pixels (the others fixed)."""
    d = np.zeros(8)
    d[2 * corner: 2 * corner + 2] = dist / np.sqrt(2) * auto._scale(truth)
    return hg.corners_matrix(shape, truth, d)


def test_the_true_warp_is_estimated_within_a_pixel(case):
    scan, chans, ph, truth = case
    la = local_alignment(scan, chans, ph, truth)
    assert la.max_error < 0.8  # the verdict's threshold for good
    assert la.shifts.shape == (9, 2) and np.all(la.stderr > 0)


@pytest.mark.parametrize("corner", [0, 2])
def test_a_warp_wrong_at_one_corner_is_seen_there(case, corner):
    scan, chans, ph, truth = case
    m = _perturbed(truth, scan.shape[-2:], corner, 2.0)
    true_max = _max_error(m, truth, scan.shape[-2:])
    assert 1.5 < true_max < 2.5  # about 2 px (the photo scale varies over a perspective photo)
    la = local_alignment(scan, chans, ph, m)
    assert la.max_error > 1.0
    assert int(np.argmax(la.corner_error)) == corner
    assert 0.5 * true_max < la.corner_error[corner] < 1.5 * true_max


def test_the_verdict_does_not_call_a_locally_wrong_warp_good(case):
    scan, chans, ph, truth = case
    verdicts = {}
    for name, m in (("truth", truth), ("wrong", _perturbed(truth, scan.shape[-2:], 1, 2.0))):
        reg = Registration(matrix=m, method="auto", photo_path=ph.path, photo_sha256=ph.sha256,
                           photo_size=ph.size, scan_shape=scan.shape[-2:], quality="failed")
        judge(reg, scan, chans, ph, [])
        verdicts[name] = reg
    assert verdicts["truth"].quality == "good"
    wrong = verdicts["wrong"]
    assert wrong.quality != "good"
    assert wrong.checks["local_max_error_scan_px"]["outcome"] != "good"
    # the global evidence alone would not have caught it
    assert all(wrong.checks[k]["outcome"] == "good" for k in ("overlap", "explained", "contrast"))
