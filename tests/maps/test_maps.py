"""Peak maps, element maps, their storage, export and CLI (maxrf.maps, maxrf.cli.maps)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ssg

from maxrf import maps as mp
from maxrf.convert import convert
from maxrf.errors import LayerMissingError, ParameterError
from maxrf.store import DataStack
from maxrf.synth import make_scan


# ----------------------------------------------------------------------------- helpers
def _scan(folder, name, *, budget=None, **kw):
    """make_scan + convert + the true calibration written by hand; returns (ds, truth)."""
    kw.setdefault("height", 32)
    kw.setdefault("width", 40)
    kw.setdefault("channels", 2048)
    truth = make_scan(folder / name, **kw)
    ds = convert(folder / f"{name}.rpl", folder / f"{name}.datastack", calibrate=False,
                 budget=budget)
    ds.write_layer("calibration", {"energies": truth.energies},
                   {"gain_keV": truth.gain_keV, "offset_keV": truth.offset_keV,
                    "method": "manual", "peaks": []})
    return DataStack(ds.path), truth


def seed_get_slices(x_calib, y_max, prominence=0.5, rel_height=0.2):
    """The seed notebook's get_slices, verbatim (reference)."""
    peak_indices, shapes_dict = ssg.find_peaks(y_max, prominence=prominence)
    peaks_x, peaks_y = x_calib[peak_indices], y_max[peak_indices]
    ip_widths, heights, left_ips, right_ips = ssg.peak_widths(y_max, peak_indices,
                                                              rel_height=rel_height)
    dx = x_calib[1] - x_calib[0]
    left_bases = peaks_x - 2 * dx * ip_widths
    right_bases = peaks_x + 2 * dx * ip_widths
    left_bases_idx = np.array([np.argmin((x_calib - lb) ** 2) for lb in left_bases])
    right_bases_idx = np.array([np.argmin((x_calib - rb) ** 2) for rb in right_bases])
    peaks_xy = np.c_[peaks_x, peaks_y]
    slices = np.c_[left_bases_idx, peak_indices, right_bases_idx]
    return peaks_xy, slices


def seed_peakmaps(cube, x_calib, slices):
    """The seed's per-peak formula on an in-memory cube (float64), one slice at a time."""
    peak_maps, kev_maps = [], []
    for si, _, sk in slices:
        peak_slice = cube[:, :, si : sk + 1].astype(np.float64)
        d = sk - si
        peak_maps.append(np.sum(peak_slice, axis=2) / d - (peak_slice[:, :, 0] + peak_slice[:, :, -1]) / 2)
        kev_maps.append(x_calib[si + np.argmax(cube[:, :, si : sk + 1], axis=2)])
    return np.array(peak_maps), np.array(kev_maps)


def crosstalk(fitted, true_maps, i):
    """Standardised regression coefficients of the fitted map on all true maps, relative to
    the element's own."""
    t = np.stack([m.ravel() for m in true_maps], axis=1).astype(float)
    sd = t.std(axis=0)
    tz = (t - t.mean(axis=0)) / np.where(sd > 0, sd, 1)
    y = fitted.ravel().astype(float)
    yz = (y - y.mean()) / y.std()
    beta = np.linalg.lstsq(np.c_[np.ones(y.size), tz], yz, rcond=None)[0][1:]
    return beta / beta[i]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maps")
    return _scan(folder, "base", seed=3, elements=["Ca", "Fe", "Cu", "Zn", "Pb"])


# ----------------------------------------------------------------------------- slices
def test_get_slices_matches_seed(scan):
    ds, truth = scan
    e = np.asarray(ds.energies)
    for y in (np.asarray(ds.max_spectrum, float), np.asarray(ds.sum_spectrum) * 50):
        for prom, rel in ((0.5, 0.2), (5.0, 0.5)):
            ref_xy, ref = seed_get_slices(e, y, prom, rel)
            xy, sl = mp.get_slices(e, y, prom, rel)
            np.testing.assert_array_equal(xy, ref_xy)
            np.testing.assert_array_equal(sl[:, 1], ref[:, 1])
            # identical except the guard that keeps a slice at least 1 channel each side
            np.testing.assert_array_equal(sl[:, 0], np.minimum(ref[:, 0], ref[:, 1] - 1))
            np.testing.assert_array_equal(sl[:, 2], np.maximum(ref[:, 2], ref[:, 1] + 1))
            assert (sl[:, 0] == ref[:, 0]).mean() > 0.95


def test_get_slices_edge_cases():
    x = np.linspace(0, 10, 100)
    xy, sl = mp.get_slices(x, np.zeros(100))
    assert xy.shape == (0, 2) and sl.shape == (0, 3)
    with pytest.raises(ParameterError, match="x_keVs"):
        mp.get_slices(x, np.zeros(99))
    with pytest.raises(ParameterError, match="increasing"):
        mp.get_slices(x[::-1], np.zeros(100))
    y = np.zeros(100)
    y[50] = 10  # one-channel spike: slice still spans at least 49..51
    _, sl = mp.get_slices(x, y)
    assert sl.tolist() == [[49, 50, 51]]


def test_peak_labels():
    assert mp.peak_labels([1.234, 6.4]) == ["peak-00-1.23keV", "peak-01-6.40keV"]
    assert mp.peak_labels(np.arange(120.0))[7] == "peak-007-7.00keV"


# ----------------------------------------------------------------------------- peak maps
@pytest.mark.parametrize("budget", [2**20, 2**22, None])
def test_peak_maps_equal_seed_formula_any_chunking(tmp_path, budget):
    ds, truth = _scan(tmp_path, "chunks", budget=budget, height=30, width=37, seed=5)
    cube = ds.cube.compute()
    e = np.asarray(ds.energies)
    y = np.asarray(ds.max_spectrum, float)
    _, slices = mp.get_slices(e, y)
    ref, ref_kev = seed_peakmaps(cube, e, slices)
    pm, kev = mp.get_peakmaps(ds, y_max=y, norm=False)  # raw max: many slices
    assert pm.dtype == np.float32 and pm.shape == (len(slices), 30, 37)
    scale = np.abs(cube).max()
    np.testing.assert_allclose(pm, ref, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_array_equal(kev, ref_kev.astype(np.float32))
    # norm=True: each map divided by its maximum, as the seed
    pmn, _ = mp.get_peakmaps(ds, y_max=y)
    mx = ref.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(pmn, np.where(mx > 0, ref / np.where(mx > 0, mx, 1), ref),
                               rtol=1e-5, atol=1e-5)
    assert len(slices) > 24  # the many-slices path (segmented max of value/position keys)
    # few slices: argmax slice by slice
    _, few = mp.get_slices(e, y, prominence=20)
    ref, ref_kev = seed_peakmaps(cube, e, few)
    pm, kev = mp.get_peakmaps(ds, y_max=y, prominence=20, norm=False)
    assert 3 <= len(few) <= 24
    np.testing.assert_allclose(pm, ref, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_array_equal(kev, ref_kev.astype(np.float32))
    if budget == 2**20:
        assert len(ds.block_source().blocks()) > 20  # many ragged blocks


def test_peak_maps_on_smoothed_float_cube(tmp_path):
    truth = make_scan(tmp_path / "f", height=16, width=18, channels=1024, seed=2, n_speckles=1)
    ds = convert(tmp_path / "f.rpl", tmp_path / "f.datastack", calibrate=False, sigma=1.5)
    assert ds.dtype == np.float32
    cube = ds.cube.compute()
    y = np.asarray(ds.max_spectrum, float)
    _, slices = mp.get_slices(truth.energies, y, prominence=0.5)
    assert len(slices) > 24
    ref, ref_kev = seed_peakmaps(cube, truth.energies, slices)
    pm, kev = mp.get_peakmaps(ds.cube, truth.energies, y, norm=False)
    np.testing.assert_allclose(pm, ref, rtol=1e-5, atol=1e-5 * cube.max())
    np.testing.assert_array_equal(kev, ref_kev.astype(np.float32))


def test_peak_maps_seed_signature_on_dask_and_numpy(scan):
    ds, _ = scan
    e, y = ds.energies(), ds.max_spectrum()
    pm, kev = mp.get_peakmaps(ds, prominence=20)
    pm_d, kev_d = mp.get_peakmaps(ds.maxrf_cube, e, y, prominence=20)
    pm_n, kev_n = mp.get_peakmaps(ds.cube.compute(), e, y, prominence=20)
    np.testing.assert_array_equal(pm, pm_d)
    np.testing.assert_array_equal(pm, pm_n)
    np.testing.assert_array_equal(kev, kev_n)
    assert np.allclose(pm.max(axis=(1, 2)), 1.0)
    with pytest.raises(ParameterError, match="x_keVs"):
        mp.get_peakmaps(ds.cube.compute())


def test_one_pass_for_peaks_and_elements(scan, monkeypatch):
    from maxrf.store import CubeSource

    ds, truth = scan
    reads = []
    original = CubeSource.read_block

    def counting(self, block):
        reads.append(block.index)
        return original(self, block)

    monkeypatch.setattr(CubeSource, "read_block", counting)
    both = mp.compute_maps(ds, peaks=True, elements=truth.elements, prominence=20)
    assert sorted(reads) == list(range(len(ds.block_source().blocks())))  # every block once
    monkeypatch.setattr(CubeSource, "read_block", original)
    pm, kev = mp.get_peakmaps(ds, y_max=np.asarray(ds.max_spectrum), prominence=20, norm=False)
    em = mp.element_maps(ds, truth.elements)
    np.testing.assert_array_equal(both.peaks.maps, pm)
    np.testing.assert_array_equal(both.peaks.keV_maps, kev)
    np.testing.assert_allclose(both.elements.maps, em.maps, rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------------- element fit
OVERLAPS = [
    ("Cu/Zn", ["Ca", "Fe", "Cu", "Zn"]),
    ("Pb/As", ["Ca", "As", "Pb"]),
    ("Pb/S", ["S", "Fe", "Pb"]),
    ("Hg/Au", ["Ca", "Au", "Hg"]),
    ("Ti/Ba", ["K", "Ca", "Ti", "Ba"]),
]


@pytest.mark.parametrize(("case", "seed"), [(i, 10 + i) for i in range(len(OVERLAPS))]
                         + [(None, 20), (None, 21)])
def test_fitted_element_maps_match_truth(tmp_path, case, seed):
    if case is None:
        kw = {"elements": None, "particle_elements": ("Ca", "Fe")}
    else:
        els = OVERLAPS[case][1]
        kw = {"elements": els, "particle_elements": tuple(els[-2:])}
    ds, truth = _scan(tmp_path, "fit", seed=seed, **kw)
    em = mp.element_maps(ds, truth.elements)
    assert em.method == "fit" and em.elements == truth.elements
    assert em.maps.shape == (len(truth.elements), 32, 40) and em.maps.dtype == np.float32
    assert abs(em.fwhm_at_6keV - truth.fwhm_at_6keV) < 0.005
    assert abs(em.theta_deg - truth.theta_deg) < 3
    true_maps = [truth.maps[el] for el in truth.elements]
    for i, el in enumerate(truth.elements):
        r = np.corrcoef(em.maps[i].ravel(), true_maps[i].ravel())[0, 1]
        assert r >= 0.9, (el, r)
        ct = np.delete(np.abs(crosstalk(em.maps[i], true_maps, i)), i)
        assert ct.max() < 0.05, (el, dict(zip(np.delete(truth.elements, i), ct.round(3))))
        # counts: the total of the map is the total of the element's lines
        assert em.maps[i].sum() == pytest.approx(true_maps[i].sum(), rel=0.1)
    assert np.all(em.maps >= 0)
    assert 0.2 < np.median(em.chi2) < 2.0


def test_fit_blocks_equal_in_memory_fit(tmp_path):
    ds, truth = _scan(tmp_path, "blocks", budget=2**20, height=20, width=23, seed=7, n_speckles=2,
                      elements=["Ca", "Fe", "Pb"])
    model = mp.fit_model(ds.energies, truth.elements, ds.sum_spectrum)
    amps, chi2 = model.fit(ds.cube.compute().reshape(-1, ds.shape[2]))
    em = mp.element_maps(ds, truth.elements, fwhm_at_6keV=model.fwhm_at_6keV,
                         theta_deg=model.theta_deg)
    k = len(truth.elements)
    np.testing.assert_allclose(em.maps.reshape(k, -1), amps[:, :k].T, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(em.chi2.ravel(), chi2, rtol=1e-4, atol=1e-4)


def test_nnls_gram_equals_scipy_nnls():
    from scipy.optimize import nnls

    from maxrf.solve import nnls_gram

    rng = np.random.default_rng(0)
    m, n = 6, 300
    a = np.abs(rng.normal(size=(40, m))) + 0.3 * rng.normal(size=(40, m))
    x_true = np.maximum(rng.normal(size=(n, m)), 0)
    y = x_true @ a.T + 0.5 * rng.normal(size=(n, 40))
    gram = a.T @ a
    b = y @ a
    unconstrained = np.linalg.solve(gram, b.T).T
    got, refined = nnls_gram(gram, b, unconstrained, np.ones(m, bool))
    assert refined.any()
    for i in range(n):
        ref = nnls(a, y[i])[0]
        np.testing.assert_allclose(got[i], ref, atol=1e-8)
    # partly constrained: continuum-like free columns may stay negative
    cons = np.array([True] * 4 + [False] * 2)
    got, _ = nnls_gram(gram, b, unconstrained, cons)
    assert np.all(got[:, :4] >= 0)
    grad = b - got @ gram
    np.testing.assert_allclose(grad[:, 4:], 0, atol=1e-8)  # free columns at their optimum
    assert np.all(grad[:, :4][got[:, :4] == 0] <= 1e-8)  # KKT on the clipped ones


def test_element_maps_errors(scan):
    ds, _ = scan
    with pytest.raises(ParameterError, match="method"):
        mp.element_maps(ds, ["Fe"], method="magic")
    with pytest.raises(ParameterError, match="no lines"):
        mp.element_maps(ds, ["Fe", "Na"], energy_range=(2.0, 30.0))
    with pytest.raises(ParameterError, match="unknown element"):
        mp.element_maps(ds, ["Xx"])
    with pytest.raises(ParameterError, match="nothing"):
        mp.compute_maps(ds, peaks=False)


# ----------------------------------------------------------------------------- windows
def test_window_rule_avoids_overlaps():
    e = np.arange(2048) * 0.02 - 0.5
    wins = {w["element"]: w for w in mp.window_lines(["As", "Pb", "Fe"], e)}
    assert wins["As"]["line"] == "Kb" and wins["Pb"]["line"] == "Lb" and wins["Fe"]["line"] == "Ka"
    assert wins["As"]["free"] and wins["Fe"]["free"]
    alone = {w["element"]: w for w in mp.window_lines(["As", "Fe"], e)}
    assert alone["As"]["line"] == "Ka"
    lo, hi = wins["Fe"]["keV_range"]
    assert lo < 6.40 < hi and hi - lo == pytest.approx(2 * 0.145 * 6.40 / 5.9, rel=0.2)


def test_window_method_maps(scan):
    ds, truth = scan
    em = mp.element_maps(ds, truth.elements, method="window")
    assert em.method == "window" and np.all(np.isnan(em.chi2))
    assert [w["element"] for w in em.windows] == truth.elements
    for i, el in enumerate(truth.elements):
        r = np.corrcoef(em.maps[i].ravel(), truth.maps[el].ravel())[0, 1]
        assert r > 0.9, (el, r)
        assert em.maps[i].sum() == pytest.approx(truth.maps[el].sum(), rel=0.25)


@pytest.mark.parametrize("seed_", [11, 12, 13])
def test_default_prominence_is_scaled_to_the_noise(tmp_path, seed_):
    """On raw counts the seed's 0.5 slices hundreds of noise wiggles; the data-scaled
    default (compute_maps, maxrf maps) keeps every element's main lines and few else."""
    from maxrf import physics

    ds, truth = _scan(tmp_path, f"p{seed_}", seed=seed_, height=40, width=48,
                      elements=["Ca", "Fe", "Cu", "Pb", "Zn"])
    e, y = np.asarray(ds.energies), np.asarray(ds.max_spectrum, float)
    res = mp.compute_maps(ds, peaks=True)
    auto = res.peaks.peaks_keV
    seed_default = mp.get_slices(e, y)[0]  # get_slices keeps the seed's 0.5
    assert 8 <= auto.size <= len(seed_default) / 5, (auto.size, len(seed_default))
    for el in truth.elements:
        line = "La" if el == "Pb" else "Ka"
        keV = physics.line_energy(el, line)
        assert np.min(np.abs(auto - keV)) < 0.08, (el, keV, auto)
    assert res.peaks.prominence is None
    # an explicit prominence is still honoured
    assert mp.compute_maps(ds, peaks=True, prominence=0.5).peaks.maps.shape[0] == len(seed_default)


# ----------------------------------------------------------------------------- storage
def test_layers_stored_with_schema(scan):
    ds, truth = scan
    res = mp.compute_maps(ds, peaks=True, elements=["Fe", "Cu"], prominence=20, store=True)
    pl = ds.read("peak_maps")
    k = len(res.peaks.labels)
    assert pl["maps"].shape == (k, 32, 40) and pl["maps"].dtype == np.float32
    assert pl["keV_maps"].shape == (k, 32, 40) and pl["slices"].shape == (k, 3)
    np.testing.assert_array_equal(pl["maps"], res.peaks.maps)
    np.testing.assert_allclose(pl["peaks_keV"], res.peaks.peaks_keV)
    assert pl.attrs["labels"] == res.peaks.labels and pl.attrs["norm"] is False
    el = ds.read("element_maps")
    np.testing.assert_array_equal(el["maps"], res.elements.maps)
    assert el["chi2"].shape == (32, 40)
    assert el.attrs["elements"] == ["Fe", "Cu"] and el.attrs["method"] == "fit"


@pytest.mark.parametrize("method,norm,seed_", [("fit", False, 4), ("fit", True, 5),
                                               ("window", True, 6)])
def test_stored_maps_stream_in_bands_and_equal_in_memory(tmp_path, monkeypatch, method, norm,
                                                         seed_):
    """store=True streams the maps into the layers band by band (a tiny budget gives many
    bands of a few rows); the stored maps equal the in-memory computation exactly."""
    from maxrf import engine
    from maxrf.store import LayerArray

    ds, truth = _scan(tmp_path, "bands", budget=2**19, seed=seed_, elements=["Ca", "Fe", "Pb"])
    kw = dict(peaks=True, elements=truth.elements, method=method, prominence=10, norm=norm)
    mem = mp.compute_maps(ds, **kw)
    monkeypatch.setenv("MAXRF_BUDGET_MB", "0.05")
    k = 2 * len(mem.peaks.labels)
    assert engine.band_rows(ds.shape[:2], k, ds.chunks[0]) < ds.shape[0] // 3  # several bands
    before = engine.stats["runs"]
    res = mp.compute_maps(ds, **kw, store=True)
    assert engine.stats["runs"] == before + 1  # still one pass over the cube
    assert isinstance(res.peaks.maps, LayerArray) and isinstance(res.elements.maps, LayerArray)
    np.testing.assert_array_equal(np.asarray(res.peaks.maps), mem.peaks.maps)
    np.testing.assert_array_equal(np.asarray(res.peaks.keV_maps), mem.peaks.keV_maps)
    np.testing.assert_array_equal(np.asarray(res.elements.maps), mem.elements.maps)
    np.testing.assert_array_equal(np.asarray(res.elements.chi2), mem.elements.chi2)
    assert res.elements.refined_fraction == pytest.approx(mem.elements.refined_fraction)
    if norm:
        assert np.nanmax(np.asarray(res.peaks.maps), axis=(1, 2)) == pytest.approx(1.0)
    pl, el = ds.read("peak_maps"), ds.read("element_maps")
    assert pl.attrs["labels"] == mem.peaks.labels and pl.attrs["norm"] is norm
    np.testing.assert_array_equal(pl["slices"], mem.peaks.slices)
    assert el.attrs["method"] == method and el.attrs["elements"] == truth.elements
    for i, element in enumerate(truth.elements):  # a map at a time, as the viewer reads
        np.testing.assert_array_equal(res.elements[element], mem.elements.maps[i])


def test_stored_maps_memory_is_a_band_not_the_stack(tmp_path, monkeypatch):
    """With 80 maps of 300 x 300 pixels (29 MB), the streamed pass holds a few MB."""
    import tracemalloc

    from conftest import poisson_cube, write_pair

    cube = poisson_cube(7, shape=(300, 300, 128), lam=2.0)
    ds = convert(write_pair(tmp_path, cube), calibrate=False, budget=2**20)
    e = 1.0 + 0.02 * np.arange(128)
    ds.write_layer("calibration", {"energies": e}, {"gain_keV": 0.02, "offset_keV": 1.0,
                                                    "method": "manual", "peaks": []})
    comb = np.zeros(128)
    comb[2:122:3] = 100.0  # 40 isolated peaks -> 40 slices -> 80 maps
    monkeypatch.setenv("MAXRF_BUDGET_MB", "4")
    output = 80 * 300 * 300 * 4
    peaks = {}
    for store in (False, True):
        tracemalloc.start()
        res = mp.compute_maps(ds, peaks=True, y_max=comb, prominence=1, store=store)
        peaks[store] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(res.peaks.labels) == 40
        np.testing.assert_allclose(np.asarray(res.peaks.maps)[7],
                                   mp.seed_peak_map(cube[:, :, slice(res.peaks.slices[7, 0],
                                                                     res.peaks.slices[7, 2] + 1)]),
                                   rtol=1e-6, atol=1e-5)
    assert peaks[False] > output  # the in-memory result is the whole stack ...
    assert peaks[True] < output / 4, peaks  # ... the stored one a band of it


def test_identified_elements(scan):
    ds, _ = scan
    from maxrf.store import delete_layer

    delete_layer(ds.path, "identification")
    with pytest.raises(LayerMissingError, match="maxrf identify"):
        mp.identified_elements(ds)
    ds.write_layer("identification", {}, {"elements": [
        {"element": "Fe", "status": "present"}, {"element": "Cu", "status": "absent"},
        {"element": "pb", "status": "present"}]})
    assert mp.identified_elements(ds) == ["Fe", "Pb"]
    delete_layer(ds.path, "identification")


# ----------------------------------------------------------------------------- CLI / export
def test_cli_writes_named_files_that_read_back(scan, tmp_path, capsys):
    import tifffile

    from maxrf.cli import main

    ds, truth = scan
    out = tmp_path / "export"
    rc = main(["maps", str(ds.path), "--peaks", "--elements", "Fe,Cu", "--out", str(out),
               "--prominence", "40", "--quiet"])
    assert rc == 0
    pl, el = ds.read("peak_maps"), ds.read("element_maps")
    for label, img in zip(pl.attrs["labels"], pl["maps"]):
        assert label.startswith("peak-") and label.endswith("keV")
        np.testing.assert_array_equal(tifffile.imread(out / f"{label}.tiff"), img)
        assert (out / f"{label}.png").stat().st_size > 1000
    for name, img in zip(["Fe", "Cu"], el["maps"]):
        back = tifffile.imread(out / f"{name}.tiff")
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, img)
        assert (out / f"{name}.png").exists()
    np.testing.assert_array_equal(tifffile.imread(out / "chi2.tiff"), el["chi2"])
    assert (out / "overview-peaks.png").exists() and (out / "overview-elements.png").exists()
    names = {p.name for p in out.iterdir()}
    assert any(n.startswith("peak-00-") for n in names)


def test_cli_element_choice(scan, tmp_path, capsys):
    from maxrf.cli import main
    from maxrf.store import delete_layer

    ds, truth = scan
    delete_layer(ds.path, "identification")
    rc = main(["maps", str(ds.path), "--elements", "auto", "--no-identify",
               "--out", str(tmp_path / "a")])
    assert rc == 1
    assert "maxrf identify" in capsys.readouterr().err
    # --no-identify without identification: peaks only (the default identifies first)
    rc = main(["maps", str(ds.path), "--prominence", "60", "--format", "tiff", "--no-identify",
               "--out", str(tmp_path / "b")])
    assert rc == 0
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files and all(f.startswith("peak-") and f.endswith(".tiff") for f in files)
    # default with identification: peaks + the present elements
    ds.write_layer("identification", {}, {"elements": [
        {"element": "Fe", "status": "present"}, {"element": "Zn", "status": "absent"}]})
    rc = main(["maps", str(ds.path), "--prominence", "60", "--format", "tif",
               "--method", "window", "--out", str(tmp_path / "c")])
    assert rc == 0
    assert (tmp_path / "c" / "Fe.tiff").exists() and not (tmp_path / "c" / "Zn.tiff").exists()
    assert ds.read("element_maps").attrs["method"] == "window"
    assert "1 element maps (Fe)" in capsys.readouterr().out
    delete_layer(ds.path, "identification")
    rc = main(["maps", str(ds.path), "--peaks", "--format", "gif", "--out", str(tmp_path / "d")])
    assert rc == 1 and "--format" in capsys.readouterr().err


# ----------------------------------------------------------------------------- distributed
def test_distributed_equals_local(tmp_path, client):
    ds, truth = _scan(tmp_path, "dist", budget=2**21, seed=8, elements=["Ca", "Fe", "Pb"])
    assert len(ds.block_source().blocks()) > 4
    local = mp.compute_maps(ds, peaks=True, elements=truth.elements, prominence=10)
    dist = mp.compute_maps(ds, peaks=True, elements=truth.elements, prominence=10, client=client)
    np.testing.assert_array_equal(dist.peaks.maps, local.peaks.maps)
    np.testing.assert_array_equal(dist.peaks.keV_maps, local.peaks.keV_maps)
    np.testing.assert_allclose(dist.elements.maps, local.elements.maps, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(dist.elements.chi2, local.elements.chi2, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mp.sum_image(ds, client=client), mp.sum_image(ds))


def test_distributed_stored_maps_equal_local(tmp_path, client):
    """The streamed store path on a 2-process cluster: the layers equal the local run's."""
    ds, truth = _scan(tmp_path, "dstore", budget=2**21, seed=9, elements=["Fe", "Cu", "Pb"])
    kw = dict(peaks=True, elements=truth.elements, prominence=10, norm=True, store=True)
    mp.compute_maps(ds, **kw)
    local_p, local_e = ds.read("peak_maps"), ds.read("element_maps")
    mp.compute_maps(ds, **kw, client=client)
    dist_p, dist_e = ds.read("peak_maps"), ds.read("element_maps")
    np.testing.assert_array_equal(dist_p["maps"], local_p["maps"])
    np.testing.assert_array_equal(dist_p["keV_maps"], local_p["keV_maps"])
    np.testing.assert_allclose(dist_e["maps"], local_e["maps"], rtol=1e-5, atol=1e-3)
    assert dist_p.attrs == local_p.attrs


def test_worker_killed_mid_maps_same_results(tmp_path, client):
    """Kill a worker process while the maps pass runs: dask reruns its blocks, the stored
    maps equal the local run's."""
    import os
    import signal
    import threading
    import time

    from maxrf import engine

    ds, truth = _scan(tmp_path, "kill", budget=2**21, height=96, width=80, seed=10,
                      elements=["Fe", "Cu", "Pb"])
    kw = dict(peaks=True, elements=truth.elements, prominence=10, store=True)
    local = mp.compute_maps(ds, **kw)
    local_maps = np.asarray(local.elements.maps)
    local_peaks = np.asarray(local.peaks.maps)
    n_blocks = len(ds.block_source().blocks())
    workers = list(client.scheduler_info()["workers"])
    pids = client.run(os.getpid)
    killed = {}
    real_add = engine.BandedMaps.add
    fed = {"n": 0}

    def counting_add(self, where, part):
        fed["n"] += 1
        return real_add(self, where, part)

    def kill_one():
        deadline = time.perf_counter() + 60
        while fed["n"] < n_blocks // 5 and time.perf_counter() < deadline:
            time.sleep(0.005)
        killed["at"] = time.perf_counter()
        killed["fed"] = fed["n"]
        os.kill(pids[workers[0]], signal.SIGKILL)

    engine.BandedMaps.add = counting_add
    try:
        t = threading.Thread(target=kill_one)
        t.start()
        dist = mp.compute_maps(ds, **kw, client=client)
        done = time.perf_counter()
        t.join()
    finally:
        engine.BandedMaps.add = real_add
    assert killed["at"] < done and killed["fed"] < 2 * n_blocks, "killed after the run"
    np.testing.assert_array_equal(np.asarray(dist.peaks.maps), local_peaks)
    np.testing.assert_allclose(np.asarray(dist.elements.maps), local_maps, rtol=1e-5, atol=1e-3)
    client.wait_for_workers(2, timeout=60)


# ----------------------------------------------------------------------------- small helpers
def seed_get_noise_level(peak_map, noise_frac=0.5):
    import scipy.stats as sstats

    is_negative = peak_map < 0
    res = sstats.cumfreq(peak_map[is_negative], numbins=10)
    bins = res.lowerlimit + np.linspace(0, res.binsize * res.cumcount.size, res.cumcount.size)
    hist = 1 - res.cumcount / res.cumcount.max()
    level_i = np.argmin((hist - noise_frac) ** 2)
    return -bins[level_i], is_negative


def test_noise_level_as_seed():
    rng = np.random.default_rng(1)
    pm = rng.normal(0, 2.0, size=(50, 60)) + (rng.random((50, 60)) > 0.9) * 30
    for frac in (0.2, 0.5, 0.8):
        level, neg = mp.get_noise_level(pm, frac)
        ref_level, ref_neg = seed_get_noise_level(pm, frac)
        assert level == pytest.approx(ref_level)
        np.testing.assert_array_equal(neg, ref_neg)
    assert mp.get_noise_level(np.ones((3, 3)))[0] == 0.0


def test_histeq_nan_safe():
    img = np.arange(100, dtype=float).reshape(10, 10)
    img[0, 0] = np.nan
    img[1, 1] = np.inf
    out = mp.histeq(img)
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 1])
    ok = np.isfinite(img)
    assert np.nanmin(out) >= 0 and np.nanmax(out) == pytest.approx(1.0)
    assert np.all(np.diff(out[ok]) >= 0)  # monotone in the input
    assert np.all(mp.histeq(np.full((4, 4), 3.0)) == 1.0)


def test_sum_image(scan):
    ds, _ = scan
    cube = ds.cube.compute()
    e = np.asarray(ds.energies)
    lo = int(np.searchsorted(e, 1.0))
    np.testing.assert_array_equal(mp.sum_image(ds), cube[:, :, lo:].sum(axis=2))
    lo3 = int(np.searchsorted(e, 3.0))
    np.testing.assert_array_equal(mp.sum_image(cube, 3.0, x_keVs=e), cube[:, :, lo3:].sum(axis=2))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.uint8])
def test_peak_slice_kernel_on_overlapping_slices(seed, dtype):
    """The window-sum kernel (covered channels gathered, 32-bit segment sums for 8/16-bit
    counts) against the seed's formula slice by slice, on nested, overlapping, adjacent
    and far-apart slices, and on counts at the dtype's maximum (overflow)."""
    from maxrf.engine import Block

    rng = np.random.default_rng(seed)
    n_ch = 700
    big = np.iinfo(dtype).max if np.dtype(dtype).kind in "ui" else 1e6
    cube = rng.integers(0, 50, (5, 7, n_ch)).astype(dtype)
    cube[0] = big  # a full row at the maximum value: sums overflow a too-narrow accumulator
    left = rng.integers(0, n_ch - 300, 8)
    width = rng.integers(1, 300, 8)
    sl = [[a, a + w // 2, a + w] for a, w in zip(left, width)]
    sl += [[sl[0][0], sl[0][0], sl[0][0] + 1], [sl[1][2], sl[1][2], min(n_ch - 1, sl[1][2] + 5)],
           [10, 20, 650]]  # a two-channel slice, one starting where another ends, a wide one
    slices = np.array(sl)
    energies = np.linspace(0.0, 20.0, n_ch)
    for kev_maps in (True, False):
        out = mp.PeakSliceMaps(slices, energies, kev_maps=kev_maps).pixel_maps(
            cube, Block(0, slice(0, 5), slice(0, 7)))
        k = len(slices)
        for j, (a, _p, b) in enumerate(slices):
            ref = mp.seed_peak_map(cube[:, :, a:b + 1])
            np.testing.assert_allclose(out[j], ref, rtol=1e-6, atol=1e-6 * big)
            if kev_maps:
                np.testing.assert_array_equal(
                    out[k + j], energies[a + np.argmax(cube[:, :, a:b + 1], axis=2)].astype(np.float32))
