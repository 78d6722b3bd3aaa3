"""The seed's notebook (peak slice maps, iron speckles) end to end, ``import maxrf as maxrf4u``,
on a synthetic raw-count scan: it finds the scan's real peaks, within a few extra."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    from maxrf.convert import convert
    from maxrf.synth import make_scan

    folder = tmp_path_factory.mktemp("seed")
    truth = make_scan(folder / "scan", height=40, width=48, channels=2048, seed=11,
                      elements=["Ca", "Ti", "Fe", "Cu", "Zn", "Pb"], n_speckles=6)
    convert(folder / "scan.rpl")
    return folder / "scan.datastack", truth


def test_smoothed_max_is_the_max_of_the_smoothed_cube(scan):
    from scipy.ndimage import gaussian_filter1d

    import maxrf as maxrf4u

    ds = maxrf4u.DataStack(scan[0])
    cube = np.asarray(ds.cube.compute(), dtype=np.float64)
    ref = gaussian_filter1d(cube, 7.0, axis=-1, mode="mirror").max(axis=(0, 1))
    np.testing.assert_allclose(ds.max_spectrum(), ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(ds.max_spectrum), cube.max(axis=(0, 1)))  # raw


def test_seed_notebook_runs_and_finds_the_real_peaks(scan):
    import matplotlib.pyplot as plt

    import maxrf as maxrf4u
    from maxrf.physics import line_energy

    path, truth = scan
    ds = maxrf4u.DataStack(path)
    peaks_xy, slices = maxrf4u.get_slices(ds.energies(), ds.max_spectrum())
    found = peaks_xy[:, 0]
    # every element's main line and the tube's Rh Ka line are found ...
    main = [line_energy(el, "La" if el == "Pb" else "Ka") for el in truth.elements]
    main.append(line_energy("Rh", "Ka"))
    for keV in main:
        assert np.min(np.abs(found - keV)) < 0.1, (keV, np.round(found, 2))
    # ... with a few extra at most: the other resolved lines of these elements, the Compton
    # peak, sum/escape peaks; the raw max spectrum sliced alike gives hundreds
    strong = {round(line_energy(el, ln), 1) for el in [*truth.elements, "Rh"]
              for ln in ("Ka", "Kb", "La", "Lb", "Lg") if _has(el, ln) and line_energy(el, ln) < 25}
    assert len(found) <= len(strong) + 5, np.round(found, 2)
    raw_xy, _ = maxrf4u.get_slices(ds.energies(), ds.max_spectrum)  # the exact raw semantics
    assert len(raw_xy) > 5 * len(found)

    peak_maps, keV_maps = maxrf4u.get_peakmaps(ds.maxrf_cube, ds.energies(), ds.max_spectrum())
    assert len(peak_maps) == len(found)
    i_fe = int(np.argmin(np.abs(found - maxrf4u.IRON_Ka)))
    iron = peak_maps[i_fe]
    assert iron.max() == 1.0  # the seed's norm=True
    titles = [f"[{i}] {keV:.02f}" for i, keV in enumerate(found)]
    peak_maps_histeq = [maxrf4u.histeq(pm) for pm in peak_maps]
    fig, axs = maxrf4u.multi_plot(*peak_maps_histeq, titles=titles, fontsize="large", cmap="viridis")
    plt.close(fig)
    sa = maxrf4u.SpeckleAtlas(iron)
    sa.measure_speckles()
    speckles_x, speckles_y = sa.centroids_xy.T
    true = np.asarray(truth.speckle_centroids, dtype=float)  # (row, col)
    hits = sum(np.min(np.hypot(speckles_y - r, speckles_x - c)) < 2 for r, c in true)
    assert hits >= len(true) - 1
    p = sa.props[0]
    spec = maxrf4u.region_spectra(ds.maxrf_cube, mask=p.image, offset=p.bbox[:2])
    ref = np.asarray(ds.maxrf_cube.compute(), dtype=np.float64)[sa.relabel_image == p.label].mean(axis=0)
    np.testing.assert_allclose(spec, ref)
    np.testing.assert_allclose(maxrf4u.region_spectra(ds.maxrf_cube, mask=p), ref)
    with pytest.raises(maxrf4u_errors().ParameterError, match="offset"):
        maxrf4u.region_spectra(ds.maxrf_cube, mask=p.image)


def test_seed_constants():
    import maxrf as maxrf4u
    from maxrf.physics import line_energy

    assert maxrf4u.IRON_Ka == 6.4032016008004 and maxrf4u.RHODIUM_Ka == 20.210105052526263
    assert abs(maxrf4u.IRON_Ka - line_energy("Fe", "Ka")) < 0.005
    assert abs(maxrf4u.RHODIUM_Ka - line_energy("Rh", "Ka")) < 0.05
    assert abs(maxrf4u.LEAD_La - 10.55) < 0.02 and abs(maxrf4u.COPPER_Ka - 8.04) < 0.01


def _has(el, ln):
    from maxrf.physics import line_energy

    try:
        line_energy(el, ln)
        return True
    except Exception:  # noqa: BLE001 - no such line for this element
        return False


def maxrf4u_errors():
    import maxrf.errors

    return maxrf.errors
