"""A photo in which a grey card hides part of the scanned area must not be registered
wrongly with a "good" verdict (checked against the known warp of a synthetic photograph)."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.io.photo import read_photo
from maxrf.registration import auto, register, scan_image
from maxrf.registration import homography as hg
from maxrf.registration.register import scan_maps, scan_stack
from maxrf.registration.stability import stability
from maxrf.registration.verdict import GOOD
from maxrf.synth import make_scan
from maxrf.synth_photo import make_photo

#: a development seed on which, before the stability check, the card over 3 % of the scan's
#: width bent the fit to 2.3 px at the far corner while every other check called it good
SEED = 401


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    d = tmp_path_factory.mktemp("stability")
    truth = make_scan(d / "scan", height=64, width=80, channels=512, seed=SEED)
    return d, convert(d / "scan.rpl", d / "scan.datastack"), truth


def _max_error(matrix: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    g = hg.scan_grid(shape)
    return float(np.linalg.norm(hg.apply(np.linalg.inv(truth), hg.apply(matrix, g)) - g, axis=1).max())


def test_a_card_over_the_scan_is_not_good_unless_right(scan):
    d, ds, truth = scan
    pt = make_photo(truth.maps, d / "card.jpg", seed=SEED, card_over_scan=0.03)
    reg = register(ds, pt.path, store=False)
    err = _max_error(reg.matrix, pt.matrix, truth.shape[:2])
    assert reg.quality != "good" or err < 1.0, (reg.quality, err)
    check = reg.checks["stability_scan_px"]
    if err > 1.0:  # the evidence that says so is the stability check
        assert check["outcome"] != "good" and check["value"] > GOOD["stability_scan_px"]
    # and the refit without the card's quadrant is taken: the whole fit was 2.3 px off here
    assert err < 1.0


def test_the_true_warp_of_a_clean_photo_is_stable(scan):
    d, ds, truth = scan
    pt = make_photo(truth.maps, d / "clean.jpg", seed=SEED)
    img, _ = scan_image(ds)
    ph = read_photo(pt.path)
    st = stability(scan_stack(img, scan_maps(ds)), auto.photo_channels(ph.image), ph, pt.matrix)
    assert st.shifts.shape == (4,)
    assert st.max_shift < GOOD["stability_scan_px"]
