"""synth: synthetic scans with ground truth, checked with numpy against the truth."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import maximum_filter, uniform_filter

from maxrf import physics, synth
from maxrf.errors import MaxrfError, OutputExistsError, ParameterError


def read_pair(rpl: str | Path) -> tuple[dict[str, str], np.ndarray]:
    """Parse the header by hand and read the raw with np.fromfile (independent reader)."""
    rpl = Path(rpl)
    header = {}
    for line in rpl.read_text().splitlines():
        if line.startswith(";") or not line.strip():
            continue
        key, value = line.split("\t", 1)
        header[key.strip().lower()] = value.strip()
    kind = {"unsigned": "u", "signed": "i", "float": "f"}[header["data-type"]]
    order = {"little-endian": "<", "big-endian": ">"}[header["byte-order"]]
    dtype = np.dtype(f"{order}{kind}{header['data-length']}")
    assert header["record-by"] == "vector" and header["offset"] == "0"
    h, w, c = (int(header[k]) for k in ("height", "width", "depth"))
    cube = np.fromfile(rpl.with_suffix(".raw"), dtype=dtype).reshape(h, w, c)
    return header, cube


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    truth = synth.make_scan(folder / "scan", seed=0)
    header, cube = read_pair(folder / "scan.rpl")
    return folder, truth, header, cube


def test_pair_written_and_read_back(scan):
    folder, truth, header, cube = scan
    assert {p.name for p in folder.iterdir()} == {
        "scan.rpl",
        "scan.raw",
        "scan.truth.npz",
        "scan.truth.json",
    }
    assert cube.shape == truth.shape == (64, 80, 2048)
    assert cube.dtype == np.dtype("<u2")
    assert "depthscaleincrement" not in header  # no calibration unless asked
    assert cube.max() > 0
    np.testing.assert_allclose(
        truth.energies, truth.offset_keV + truth.gain_keV * np.arange(2048), rtol=0, atol=1e-12
    )


def test_truth_round_trip(scan):
    folder, truth, _, _ = scan
    for path in (folder / "scan.rpl", folder / "scan", folder / "scan.truth.json"):
        back = synth.load_truth(path)
        assert back.elements == truth.elements
        assert back.calibration == truth.calibration
        assert back.particle_pixel == truth.particle_pixel
        assert back.shape == truth.shape and back.seed == 0
        for el in truth.elements:
            np.testing.assert_array_equal(back.maps[el], truth.maps[el])
            assert back.maps[el].dtype == np.float32 and back.maps[el].shape == (64, 80)
        np.testing.assert_array_equal(back.speckle_centroids, truth.speckle_centroids)
    with pytest.raises(MaxrfError):
        synth.load_truth(folder / "nothing.rpl")


def test_speckles_are_local_maxima_at_their_centroids(scan):
    _, truth, _, _ = scan
    assert truth.speckle_element == "Fe"
    cents = truth.speckle_centroids
    assert cents.shape == (8, 2)
    m = truth.maps["Fe"]
    h, w = m.shape
    peaks = m == maximum_filter(m, size=5)
    for cy, cx in cents:
        assert 3 <= cy <= h - 4 and 3 <= cx <= w - 4
        r, c = int(round(cy)), int(round(cx))
        win = m[r - 2 : r + 3, c - 2 : c + 3]
        pr, pc = np.unravel_index(np.argmax(win), win.shape)
        pr, pc = r - 2 + pr, c - 2 + pc
        assert peaks[pr, pc]
        assert np.hypot(pr - cy, pc - cx) <= 1.0
    d = np.hypot(*(cents[:, None, :] - cents[None, :, :]).transpose(2, 0, 1))
    assert d[np.triu_indices(len(cents), 1)].min() > 4
    assert np.all((truth.speckle_sizes >= 1) & (truth.speckle_sizes <= 9))


def test_particle_pixel(scan):
    _, truth, _, cube = scan
    pr, pc = truth.particle_pixel
    assert truth.particle_elements == ("Cu", "Zn")
    for el in truth.particle_elements:
        m = truth.maps[el]
        assert np.unravel_index(np.argmax(m), m.shape) == (pr, pc)
        others = np.delete(m.ravel(), pr * m.shape[1] + pc)
        assert m[pr, pc] > 1.9 * others.max()
    # the measured Cu Ka counts are highest there too
    ch = int(round(truth.channel(physics.line_energy("Cu", "Ka"))))
    cu = cube[:, :, ch - 3 : ch + 4].sum(axis=-1)
    assert np.unravel_index(np.argmax(cu), cu.shape) == (pr, pc)


def test_fe_ka_and_compton_positions_follow_the_calibration(scan):
    _, truth, _, cube = scan
    mean = cube.mean(axis=(0, 1))
    e = truth.energies
    ka = (e > 6.2) & (e < 6.6)
    found = np.flatnonzero(ka)[np.argmax(mean[ka])]
    assert abs(found - (6.40 - truth.offset_keV) / truth.gain_keV) <= 1.0
    compton = physics.compton_shift(physics.line_energy("Rh", "Ka"), truth.theta_deg)
    win = (e > compton - 0.7) & (e < compton + 0.5)
    found = e[win][np.argmax(mean[win])]
    assert abs(found - compton) < 0.15


def test_counts_per_pixel(scan, tmp_path):
    _, truth, _, cube = scan
    total = cube.sum(axis=-1, dtype=np.int64)
    assert total.mean() == pytest.approx(3000, rel=0.3)
    assert np.median(total) == pytest.approx(3000, rel=0.3)
    small = synth.make_scan(tmp_path / "low", height=24, width=30, counts_per_pixel=500, seed=4)
    _, low = read_pair(tmp_path / "low.rpl")
    assert low.sum(axis=-1).mean() == pytest.approx(500, rel=0.3)
    assert small.counts_per_pixel == 500


def test_poisson_statistics(scan):
    _, truth, _, cube = scan
    lam = synth.expected_spectra(truth)
    assert lam.shape == cube.shape
    assert lam.sum(axis=-1).mean() == pytest.approx(cube.sum(axis=-1).mean(), rel=0.01)
    sel = lam > 3
    z = (cube[sel] - lam[sel]) / np.sqrt(lam[sel])
    assert abs(z.mean()) < 0.01
    assert z.var() == pytest.approx(1.0, abs=0.02)
    # independent check: in the flattest 4 x 4 window, variance across pixels ~ mean
    total = sum(truth.maps.values()) + sum(truth.scatter_maps.values())
    local_sd = np.sqrt(
        np.maximum(uniform_filter(total**2, 4) - uniform_filter(total, 4) ** 2, 0)
    ) / uniform_filter(total, 4)
    local_sd[:3, :] = local_sd[-3:, :] = np.inf
    local_sd[:, :3] = local_sd[:, -3:] = np.inf
    r, c = np.unravel_index(np.argmin(local_sd), local_sd.shape)
    block = cube[r - 2 : r + 2, c - 2 : c + 2].reshape(16, -1).astype(float)
    m, v = block.mean(axis=0), block.var(axis=0, ddof=1)
    ok = (m > 1) & (m < 40)
    assert ok.sum() > 100
    assert np.mean(v[ok] / m[ok]) == pytest.approx(1.0, abs=0.12)


def test_seeds_change_calibration_and_data(tmp_path):
    kw = dict(height=16, width=20, channels=512, n_speckles=2)
    a = synth.make_scan(tmp_path / "a", seed=1, **kw)
    b = synth.make_scan(tmp_path / "b", seed=2, **kw)
    synth.make_scan(tmp_path / "c.rpl", seed=1, block_rows=3, **kw)
    assert a.gain_keV != b.gain_keV and a.offset_keV != b.offset_keV
    for t in (a, b):
        assert 0.97 * 41.5 / 512 <= t.gain_keV <= 1.03 * 41.5 / 512
        assert -1.0 <= t.offset_keV <= -0.1
        assert 0.130 <= t.fwhm_at_6keV <= 0.160
    raw = {k: (tmp_path / f"{k}.raw").read_bytes() for k in "abc"}
    assert raw["a"] != raw["b"]
    assert raw["a"] == raw["c"]  # same seed, other block size: identical bytes


def test_explicit_instrument_and_header_calibration(tmp_path):
    t = synth.make_scan(
        tmp_path / "cal",
        height=12,
        width=16,
        channels=1024,
        gain_keV=0.04,
        offset_keV=0.2,
        theta_deg=100.0,
        fwhm_at_6keV=0.15,
        header_calibration=True,
        n_speckles=1,
        dtype="float32",
    )
    header, cube = read_pair(tmp_path / "cal.rpl")
    assert (t.gain_keV, t.offset_keV, t.theta_deg, t.fwhm_at_6keV) == (0.04, 0.2, 100.0, 0.15)
    assert float(header["depthscaleincrement"]) == pytest.approx(0.04)
    assert float(header["depthscaleorigin"]) == pytest.approx(0.2)
    assert cube.dtype == np.dtype("<f4") and np.all(cube == np.round(cube))


def test_arbitrary_elements(tmp_path):
    els = ["Al", "Sr", "Sn", "Ba", "Au", "Hg", "U"]
    t = synth.make_scan(
        tmp_path / "odd",
        elements=els,
        height=20,
        width=24,
        n_speckles=2,
        speckle_element="Hg",
        particle_elements=("Au",),
        anode="W",
        tube_kv=50.0,
    )
    assert t.elements == els  # sorted by atomic number
    assert t.anode == "W" and t.tube_kv == 50.0
    _, cube = read_pair(tmp_path / "odd.rpl")
    lam = synth.expected_spectra(t)
    sel = lam > 5
    assert ((cube[sel] - lam[sel]) ** 2 / lam[sel]).mean() == pytest.approx(1.0, abs=0.05)


def test_speckle_and_particle_elements_are_added(tmp_path):
    t = synth.make_scan(tmp_path / "add", elements=["Pb"], height=24, width=24, n_speckles=2)
    assert set(t.elements) == {"Pb", "Fe", "Cu", "Zn"}
    t = synth.make_scan(
        tmp_path / "none", elements=["Pb"], height=8, width=8, n_speckles=0, particle=False
    )
    assert t.elements == ["Pb"] and t.particle_pixel is None and t.speckle_element is None
    assert t.speckle_centroids.shape == (0, 2)


def test_bad_options_leave_nothing(tmp_path):
    for kw in (
        {"elements": ["Xx"]},
        {"elements": ["Li"]},  # no line above 1 keV
        {"height": 8, "width": 8, "n_speckles": 8},
        {"anode": "Fe"},
        {"fwhm_at_6keV": 0.05},
        {"dtype": "complex64"},
        {"offset_keV": 2.0},
    ):
        with pytest.raises(ParameterError):
            synth.make_scan(tmp_path / "bad", channels=256, **kw)
    assert list(tmp_path.iterdir()) == []
    synth.make_scan(tmp_path / "x", height=8, width=8, channels=128, n_speckles=0)
    with pytest.raises(OutputExistsError):
        synth.make_scan(tmp_path / "x", height=8, width=8, channels=128, n_speckles=0)
    synth.make_scan(tmp_path / "x", height=8, width=8, channels=128, n_speckles=0, overwrite=True)


def test_default_scan_is_fast(tmp_path):
    synth.make_scan(tmp_path / "warm", height=4, width=4, channels=64, n_speckles=0)
    t0 = time.perf_counter()
    synth.make_scan(tmp_path / "fast")
    # < 2 s on an idle 2-core machine; generous bound for a loaded CI box
    assert time.perf_counter() - t0 < 6.0


def test_streaming_memory_is_bounded(tmp_path):
    synth.make_scan(tmp_path / "warm", height=4, width=4, channels=64, n_speckles=0)
    tracemalloc.start()
    try:
        synth.make_scan(
            tmp_path / "big", height=256, width=256, channels=2048, counts_per_pixel=300
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cube_bytes = 256 * 256 * 2048 * 2
    assert (tmp_path / "big.raw").stat().st_size == cube_bytes
    assert peak < cube_bytes / 8


def test_synth_spectrum():
    e = -0.2 + 0.02 * np.arange(2048)
    amps = {"Fe": 5000.0, "Pb": 3000.0}
    lam = synth.synth_spectrum(amps, e, poisson=False)
    assert lam.sum() == pytest.approx(8000 / 0.7, rel=0.02)
    only = synth.synth_spectrum(amps, e, scatter=0, poisson=False)
    assert only.sum() == pytest.approx(8000, rel=0.005)
    fe = physics.element_spectrum("Fe", e) * 5000 + physics.element_spectrum("Pb", e) * 3000
    np.testing.assert_allclose(only, fe, rtol=1e-9, atol=1e-9)
    a = synth.synth_spectrum(amps, e, rng=3)
    b = synth.synth_spectrum(amps, e, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert np.all(a == np.round(a)) and a.sum() == pytest.approx(lam.sum(), rel=0.03)
    assert abs(e[np.argmax(a)] - 6.40) < 0.05
    sc = synth.synth_spectrum({}, e, scatter={"compton": 1000.0}, poisson=False, theta_deg=120)
    peak = e[np.argmax(sc)]
    assert abs(peak - physics.compton_shift(physics.line_energy("Rh", "Ka"), 120.0)) < 0.1
    piled = synth.synth_spectrum(amps, e, scatter=0, pileup=True, poisson=False)
    ch = np.argmin(abs(e - 2 * 6.405))
    assert piled[ch] > only[ch]
    with pytest.raises(ParameterError):
        synth.synth_spectrum({"Fe": -1.0}, e)
