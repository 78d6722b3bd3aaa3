"""One peak list for hotmax, peak maps and report; no near-duplicate peak maps."""

from __future__ import annotations

import numpy as np
import pytest


def test_merge_close_keeps_the_highest():
    from maxrf.peaklist import merge_close

    y = np.zeros(100)
    y[[10, 13, 16, 40, 60, 62]] = [5, 9, 4, 3, 1, 2]
    np.testing.assert_array_equal(merge_close(y, [10, 13, 16, 40, 60, 62], 6.0), [13, 40, 62])
    np.testing.assert_array_equal(merge_close(y, [10, 40], 6.0), [10, 40])


@pytest.fixture(scope="module")
def drawing(tmp_path_factory):
    from maxrf.convert import convert
    from maxrf.synth import make_scan

    folder = tmp_path_factory.mktemp("peaklist")
    make_scan(folder / "scan", height=48, width=64, channels=2048, seed=5,
              elements=["Ca", "Fe", "Cu", "Zn", "Pb", "Ti", "K", "Mn"], n_speckles=4)
    return convert(folder / "scan.rpl")


def test_hotmax_and_peak_maps_share_one_list_without_near_duplicates(drawing):
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.maps import compute_maps
    from maxrf.peaks import estimate_fwhm_channels

    atlas = HotmaxAtlas(drawing, recompute=True)
    res = compute_maps(drawing, peaks=True, store=True)
    peak_ch = np.asarray(res.peaks.slices)[:, 1]
    np.testing.assert_array_equal(peak_ch, np.sort(atlas.peak_channels))
    fwhm = estimate_fwhm_channels(np.asarray(drawing.max_spectrum, dtype=float))
    assert np.diff(peak_ch).min() >= fwhm  # no two peak maps within the detector resolution
    e = np.asarray(drawing.energies)
    keV = e[peak_ch]
    # the lines are still there: Fe Ka, Cu Ka, Pb La each have their peak map
    for line in (6.40, 8.05, 10.55):
        assert np.min(np.abs(keV - line)) < 0.08, np.round(keV, 2)
