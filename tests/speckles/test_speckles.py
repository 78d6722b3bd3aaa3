"""Tests of maxrf.speckles against independent references (skimage, numpy, ground truth)."""

from __future__ import annotations

import csv
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
import skimage.measure as skm
from scipy.stats import norm

from maxrf.errors import OutputExistsError, OutputLocationError, ParameterError
from maxrf.speckles import (
    TABLE_COLUMNS,
    SpeckleAtlas,
    region_spectra,
    speckle_table,
    speckles_above_noise,
    write_csv,
)
from maxrf.speckles.table import _noise_level

# ---------------------------------------------------------------------------------------
# references and synthetic maps
# ---------------------------------------------------------------------------------------


def naive_scan(peak_map: np.ndarray, heights: np.ndarray):
    """The seed's per-height labelling: n regions, largest area, its label (first max)."""
    n, areas, labels = [], [], []
    for h in heights:
        lab = skm.label(peak_map > h, connectivity=1)
        a = np.bincount(lab.ravel())[1:]
        n.append(a.size)
        if a.size:
            i = int(np.argmax(a))
            areas.append(int(a[i]))
            labels.append(i + 1)
        else:
            areas.append(0)
            labels.append(0)
    return np.array(n), np.array(areas), np.array(labels)


def random_map(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.integers(1, 48, 2))
    kind = seed % 5
    if kind == 0:
        return rng.normal(size=(H, W))
    if kind == 1:  # many ties: small integers (plateaus, equal areas)
        return rng.integers(0, 4, (H, W)).astype(float)
    if kind == 2:  # correlated (large, merging regions)
        return np.cumsum(rng.normal(size=(H, W)), axis=0) + np.cumsum(rng.normal(size=(H, W)), axis=1)
    if kind == 3:  # Poisson counts, float32
        return rng.poisson(2.0, (H, W)).astype(np.float32)
    m = rng.normal(size=(H, W))  # with no-data pixels
    m[rng.random((H, W)) < 0.2] = np.nan
    if np.isnan(m).all():
        m[0, 0] = 1.0
    return m


def make_speckle_map(seed: int, H: int = 160, W: int = 192, K: int = 30, bg: float = 0.5):
    """Smooth paper background + unit Gaussian noise + K Gaussian spots.

    Returns the map, true centroids [row, col] (sub-pixel), and each spot's noise-free
    maximum pixel value (in units of the noise sigma = 1).
    """
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:H, :W].astype(float)
    ph = rng.uniform(0, 2 * np.pi, 2)
    back = bg * np.sin(2 * np.pi * 0.7 * rr / H + ph[0]) * np.cos(2 * np.pi * 0.5 * cc / W + ph[1])
    pts: list[np.ndarray] = []
    while len(pts) < K:
        p = rng.uniform([4, 4], [H - 5, W - 5])
        if all(np.hypot(*(p - q)) >= 10 for q in pts):
            pts.append(p)
    centres = np.array(pts)
    sig = rng.uniform(0.6, 1.5, K)
    amp = rng.uniform(3.0, 20.0, K)
    spots = np.zeros((H, W))
    peak_pixel = np.zeros(K)
    for k, ((r, c), s, a) in enumerate(zip(centres, sig, amp)):
        g = a * np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * s**2))
        peak_pixel[k] = g.max()
        spots += g
    m = back + spots + rng.normal(0.0, 1.0, (H, W))
    return m, centres, peak_pixel, back


def nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point of a, distance to the nearest point of b; and for each b, to a."""
    if len(a) == 0 or len(b) == 0:
        return np.full(len(a), np.inf), np.full(len(b), np.inf)
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    return d.min(axis=1), d.min(axis=0)


# ---------------------------------------------------------------------------------------
# height scan
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_height_scan_equals_naive_labelling(seed):
    m = random_map(seed)
    n_heights = int(np.random.default_rng(seed).integers(1, 70))
    atlas = SpeckleAtlas(m, n_heights=n_heights)
    assert atlas.heights.shape == (n_heights,)
    assert atlas.heights[0] == np.nanmin(m) and atlas.heights[-1] == np.nanmax(m)
    n, areas, labels = naive_scan(m, atlas.heights)
    np.testing.assert_array_equal(atlas.n_regions, n)
    np.testing.assert_array_equal(atlas.largest_areas, areas)
    np.testing.assert_array_equal(atlas.largest_labels, labels)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("step", [1, 3, 17])
def test_height_scan_in_small_steps_equals_naive_labelling(seed, step):
    """Entering pixels handled a few at a time (as on a map of millions of pixels): same
    counts, areas and labels as labelling every height."""
    from maxrf.speckles.heights import _height_levels, _height_scan

    m = random_map(seed)
    n_heights = int(np.random.default_rng(seed + 50).integers(2, 40))
    heights = np.linspace(np.nanmin(m), np.nanmax(m), n_heights)
    got = _height_scan(_height_levels(m, heights), n_heights, step_pixels=step)
    for a, b in zip(got, naive_scan(m, heights)):
        np.testing.assert_array_equal(a, b)


def test_speckle_atlas_memory_per_pixel():
    """Height scan, measurement, table and noise level of a 4 Mpx map stay under 40 bytes a
    pixel beyond the float64 map itself (the previous code took about 150)."""
    import tracemalloc

    rng = np.random.default_rng(3)
    m = rng.normal(size=(2000, 2000)).astype(np.float32)
    m[rng.integers(0, 2000, 300), rng.integers(0, 2000, 300)] += 40.0  # speckles
    tracemalloc.start()
    atlas = SpeckleAtlas(m, n_heights=100)
    atlas.measure_speckles(max_area=20)
    table = speckle_table(atlas, {"Fe": m})
    noise = _noise_level(atlas.peak_map)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert noise == pytest.approx(1.0, rel=0.05)
    assert atlas.n_speckles >= 250 and len(table["Fe"]) == atlas.n_speckles
    assert peak < 8 * m.size + 40 * m.size, peak / m.size  # float64 map + working memory


def test_height_scan_larger_maps_default_heights():
    for seed in (101, 102):
        rng = np.random.default_rng(seed)
        m = rng.normal(size=(90, 110)) + np.linspace(0, 2, 110)
        atlas = SpeckleAtlas(m)
        n, areas, labels = naive_scan(m, atlas.heights)
        np.testing.assert_array_equal(atlas.n_regions, n)
        np.testing.assert_array_equal(atlas.largest_areas, areas)
        np.testing.assert_array_equal(atlas.largest_labels, labels)


def test_constant_map_has_no_regions():
    atlas = SpeckleAtlas(np.full((5, 7), 3.0), n_heights=4)
    assert (atlas.n_regions == 0).all() and (atlas.largest_areas == 0).all()
    assert atlas.measure_speckles() == 3.0
    assert atlas.n_speckles == 0
    assert atlas.centroids_xy.shape == (0, 2)
    assert (atlas.relabel_image == 0).all()
    assert atlas.props == []


def test_height_scan_is_fast_on_a_megapixel_map():
    m = np.random.default_rng(7).normal(size=(1000, 1000))
    t0 = time.perf_counter()
    atlas = SpeckleAtlas(m, n_heights=100)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0, elapsed  # ~0.5 s here; the per-height labelling takes minutes
    assert atlas.n_regions[0] == 1 and atlas.largest_areas[0] == m.size - 1
    k = 50  # spot-check one height against skimage
    lab = skm.label(m > atlas.heights[k], connectivity=1)
    assert atlas.n_regions[k] == lab.max()
    assert atlas.largest_areas[k] == np.bincount(lab.ravel())[1:].max()


# ---------------------------------------------------------------------------------------
# clip height, area ranking, props
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_area", [5, 40, 100])
def test_clip_height_is_lowest_height_with_all_regions_small(seed, max_area):
    m = np.random.default_rng(seed).normal(size=(60, 70))
    atlas = SpeckleAtlas(m, n_heights=50)
    clip = atlas.measure_speckles(max_area=max_area)
    _, areas, _ = naive_scan(m, atlas.heights)
    ok = np.flatnonzero(areas <= max_area)
    assert clip == atlas.heights[ok[0]] == atlas.clip_height
    assert atlas.clip_height_i == ok[0]
    assert atlas.areas.max() <= max_area
    if ok[0] > 0:
        assert areas[ok[0] - 1] > max_area


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_relabel_image_is_ranked_by_area(seed):
    m, *_ = make_speckle_map(seed, H=80, W=90, K=10)
    atlas = SpeckleAtlas(m)
    atlas.measure_speckles(max_area=60)
    rel = atlas.relabel_image
    fg = m > atlas.clip_height
    np.testing.assert_array_equal(rel > 0, fg)  # background 0
    ref = skm.label(fg, connectivity=1)
    n = ref.max()
    assert rel.max() == n == atlas.n_speckles
    # the same partition as skimage's labelling
    pairs = np.unique(np.c_[ref[fg], rel[fg]], axis=0)
    assert len(pairs) == n
    areas = np.bincount(rel.ravel())[1:]
    assert areas[0] == areas.max()
    assert (np.diff(areas) <= 0).all()
    np.testing.assert_array_equal(atlas.areas, areas)
    # props[i] is label i + 1, in area order
    assert len(atlas.props) == n
    for i in (0, 1, n // 2, n - 1):
        p = atlas.props[i]
        assert p.label == i + 1
        assert p.area == areas[i]
        np.testing.assert_allclose(atlas.centroids_rc[i], p.centroid, atol=1e-9)
        np.testing.assert_allclose(atlas.centroids_xy[i], p.centroid[::-1], atol=1e-9)
        assert atlas.peaks[i] == pytest.approx(p.intensity_max)
        np.testing.assert_allclose(
            atlas.weighted_centroids_rc[i],
            np.average(p.coords, axis=0, weights=m[p.coords[:, 0], p.coords[:, 1]] - atlas.clip_height),
        )
    np.testing.assert_allclose(atlas.radii, np.sqrt(areas / np.pi))
    np.testing.assert_array_equal(atlas.centroids_x, atlas.centroids_rc[:, 1])
    np.testing.assert_array_equal(atlas.centroids_y, atlas.centroids_rc[:, 0])


def test_nan_pixels_never_belong_to_speckles():
    m = random_map(4)  # kind 4: with NaN
    m = np.pad(m, 3, constant_values=0.0)
    atlas = SpeckleAtlas(m, n_heights=30)
    atlas.measure_speckles(max_area=10)
    assert (atlas.relabel_image[np.isnan(m)] == 0).all()


# ---------------------------------------------------------------------------------------
# detection on synthetic maps with ground truth
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_detects_speckles_above_noise(seed):
    m, centres, peak_pixel, _ = make_speckle_map(seed)
    atlas = SpeckleAtlas(m)
    atlas.measure_speckles(max_area=100)
    kept = speckles_above_noise(atlas, factor=3)  # noise estimated from the map
    visible = peak_pixel > 3.0  # noise-free maximum above 3 sigma
    d_w, _ = nearest(centres[visible], atlas.weighted_centroids_rc[kept - 1])
    d_g, _ = nearest(centres[visible], atlas.centroids_rc[kept - 1])
    found = d_w < 2.0
    assert found.mean() >= 0.9
    assert d_w[found].mean() < 1.0
    assert d_g[d_g < 2.0].mean() < 1.0  # the seed's geometric centroid too
    # the table agrees with the atlas
    table = speckle_table(atlas, labels=kept)
    np.testing.assert_array_equal(table["label"], kept)
    np.testing.assert_allclose(table["row_weighted"], atlas.weighted_centroids_rc[kept - 1, 0])


@pytest.mark.parametrize("seed", range(3))
def test_few_false_speckles_on_clean_paper(seed):
    """Noise + smooth paper, no speckles: the false count matches the Gaussian tail."""
    rng = np.random.default_rng(1000 + seed)
    H, W = 160, 192
    rr, cc = np.mgrid[:H, :W]
    back = 0.3 * np.sin(2 * np.pi * rr / H) * np.cos(2 * np.pi * cc / W)
    m = back + rng.normal(size=(H, W))
    atlas = SpeckleAtlas(m)
    atlas.measure_speckles()
    assert atlas.n_speckles > 500  # noise regions at the clip height
    # pixels expected above 3 sigma: an upper bound on the noise speckles kept
    expected = norm.sf(3.0 - back).sum()
    n3 = speckles_above_noise(atlas, factor=3).size
    assert n3 <= 1.3 * expected + 5
    assert n3 / atlas.n_speckles < 0.03
    assert speckles_above_noise(atlas, factor=5).size <= 1  # ~0


@pytest.mark.parametrize("seed", range(3))
def test_pure_noise_with_strict_factor_gives_no_speckles(seed):
    m = np.random.default_rng(2000 + seed).normal(0.0, 2.5, size=(128, 128))
    atlas = SpeckleAtlas(m)
    atlas.measure_speckles()
    assert speckles_above_noise(atlas, factor=5).size == 0
    assert speckles_above_noise(atlas, noise_level=2.5, factor=5).size == 0


@pytest.mark.parametrize("seed", range(3))
def test_noise_level_estimate_is_robust(seed):
    m, *_ = make_speckle_map(seed, bg=3.0)  # large smooth background, 30 speckles
    sigma = 1.7
    m = m * sigma
    assert _noise_level(m) == pytest.approx(sigma, rel=0.08)


# ---------------------------------------------------------------------------------------
# spectra under masks
# ---------------------------------------------------------------------------------------


class RecordingArray:
    """Array-like whose reads are recorded (to check which chunks dask computes)."""

    def __init__(self, data: np.ndarray):
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __getitem__(self, key):
        out = self.data[key]
        if out.size:
            with self._lock:
                self.reads.append((key[0].start, key[1].start))
        return out


def make_cube(seed: int, H: int = 30, W: int = 41, C: int = 17) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 500, (H, W, C)).astype(np.uint16)


ROW_CHUNKS = (7, 13, 10)
COL_CHUNKS = (5, 15, 11, 10)


def chunk_of(r: int, c: int) -> tuple[int, int]:
    re = np.cumsum((0,) + ROW_CHUNKS)
    ce = np.cumsum((0,) + COL_CHUNKS)
    i = np.searchsorted(re, r, side="right") - 1
    j = np.searchsorted(ce, c, side="right") - 1
    return int(re[i]), int(ce[j])


@pytest.mark.parametrize("seed", range(4))
def test_region_spectra_equals_numpy(seed):
    cube = make_cube(seed)
    rng = np.random.default_rng(seed)
    mask = rng.random(cube.shape[:2]) < 0.05
    mask[rng.integers(0, 30), rng.integers(0, 41)] = True
    ref_pixels = cube[mask]
    ref_mean = cube[mask].astype(np.float64).mean(axis=0)
    dcube = da.from_array(cube, chunks=(ROW_CHUNKS, COL_CHUNKS, (cube.shape[2],)))
    dcube_c = da.from_array(cube, chunks=(ROW_CHUNKS, COL_CHUNKS, (9, 8)))  # split channels
    for c in (cube, dcube, dcube_c):
        np.testing.assert_allclose(region_spectra(c, mask), ref_mean, rtol=1e-12)
        px = region_spectra(c, mask, average=False)
        assert px.dtype == cube.dtype
        np.testing.assert_array_equal(px, ref_pixels)


@pytest.mark.parametrize("seed", range(3))
def test_region_spectra_reads_only_chunks_under_the_mask(seed):
    cube = make_cube(seed)
    rec = RecordingArray(cube)
    dcube = da.from_array(rec, chunks=(ROW_CHUNKS, COL_CHUNKS, (cube.shape[2],)))
    rng = np.random.default_rng(seed)
    mask = np.zeros(cube.shape[:2], bool)
    mask[tuple(rng.integers(0, 30, 3)), tuple(rng.integers(0, 41, 3))] = True
    mask[8:10, 4:7] = True  # straddles a chunk corner
    expected = {chunk_of(r, c) for r, c in zip(*np.nonzero(mask))}
    for average in (True, False):
        rec.reads.clear()
        with dask.config.set(scheduler="threads"):
            region_spectra(dcube, mask, average=average)
        assert set(rec.reads) == expected
        assert len(rec.reads) == len(expected)  # each chunk once
    assert len(expected) < len(ROW_CHUNKS) * len(COL_CHUNKS)


def test_region_spectra_errors():
    cube = make_cube(0)
    with pytest.raises(ParameterError, match="no pixels"):
        region_spectra(cube, np.zeros(cube.shape[:2], bool))
    with pytest.raises(ParameterError, match="offset"):
        region_spectra(cube, np.ones((3, 3), bool))  # a bounding box without its offset
    with pytest.raises(ParameterError, match="does not match"):
        region_spectra(cube, np.ones((cube.shape[0] + 1, 3), bool))
    with pytest.raises(ParameterError, match="3-D"):
        region_spectra(cube[..., 0], np.ones(cube.shape[:2], bool))


@pytest.mark.parametrize("seed", range(2))
def test_speckle_spectrum_is_mean_over_the_label(seed):
    m, *_ = make_speckle_map(seed, H=30, W=41, K=4)
    cube = make_cube(seed, H=30, W=41)
    atlas = SpeckleAtlas(m)
    atlas.measure_speckles(max_area=30)
    dcube = da.from_array(cube, chunks=(ROW_CHUNKS, COL_CHUNKS, (cube.shape[2],)))
    for i in {0, 1, atlas.n_speckles - 1}:
        rows, cols = np.nonzero(atlas.relabel_image == i + 1)
        ref = cube[rows, cols].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(atlas.speckle_spectrum(cube, i), ref, rtol=1e-12)
        np.testing.assert_allclose(atlas.speckle_spectrum(dcube, i), ref, rtol=1e-12)
        # the seed's bounding-box-local mask would pick other pixels: not what we use
        p = atlas.props[i]
        assert atlas.speckle_mask(i)[p.slice].sum() == p.area
    with pytest.raises(ParameterError, match="out of range"):
        atlas.speckle_spectrum(cube, atlas.n_speckles)
    with pytest.raises(ParameterError, match="out of range"):
        atlas.speckle_spectrum(cube, -1)


# ---------------------------------------------------------------------------------------
# table, csv, errors
# ---------------------------------------------------------------------------------------


def test_speckle_table_and_csv(tmp_path):
    m, *_ = make_speckle_map(9, H=60, W=70, K=8)
    rng = np.random.default_rng(9)
    fe = rng.random(m.shape)
    pb = rng.random(m.shape) * 100
    pb[0, :] = np.nan
    atlas = SpeckleAtlas(m)
    atlas.measure_speckles(max_area=50)
    table = speckle_table(atlas, {"Fe": fe, "Pb": pb})
    assert list(table) == [*TABLE_COLUMNS, "Fe", "Pb"]
    n = atlas.n_speckles
    assert all(len(v) == n for v in table.values())
    np.testing.assert_array_equal(table["label"], np.arange(1, n + 1))
    for i in range(n):
        sel = atlas.relabel_image == i + 1
        assert table["area"][i] == sel.sum()
        assert table["peak"][i] == m[sel].max()
        assert table["Fe"][i] == pytest.approx(fe[sel].mean())
        vals = pb[sel][np.isfinite(pb[sel])]
        if vals.size:
            assert table["Pb"][i] == pytest.approx(vals.mean())
        else:
            assert np.isnan(table["Pb"][i])
        r, c = np.nonzero(sel)
        assert table["row"][i] == pytest.approx(r.mean())
        assert table["col"][i] == pytest.approx(c.mean())
    np.testing.assert_allclose(table["equivalent_diameter"], np.sqrt(4 * table["area"] / np.pi))

    path = write_csv(table, tmp_path / "speckles.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(table)
    assert len(rows) == n + 1
    assert int(rows[1][0]) == 1
    assert float(rows[1][rows[0].index("Fe")]) == pytest.approx(table["Fe"][0], rel=1e-9)
    with pytest.raises(OutputExistsError):
        write_csv(table, path)
    write_csv(table, path, overwrite=True)
    with pytest.raises(OutputLocationError):
        write_csv(table, tmp_path / "missing" / "x.csv")

    sub = speckle_table(atlas, labels=[3, 1])
    np.testing.assert_array_equal(sub["label"], [3, 1])
    assert sub["area"][1] == table["area"][0]
    with pytest.raises(ParameterError, match="not speckle labels"):
        speckle_table(atlas, labels=[0])
    with pytest.raises(ParameterError, match="shape"):
        speckle_table(atlas, {"Fe": fe[:-1]})
    with pytest.raises(ParameterError, match="clashes"):
        speckle_table(atlas, {"area": fe})


def test_parameter_errors():
    with pytest.raises(ParameterError, match="n_heights"):
        SpeckleAtlas(np.zeros((4, 4)), n_heights=0)
    with pytest.raises(ParameterError, match="2-D"):
        SpeckleAtlas(np.zeros((4, 4, 2)))
    with pytest.raises(ParameterError, match="infinite"):
        SpeckleAtlas(np.array([[0.0, np.inf]]))
    with pytest.raises(ParameterError, match="only NaN"):
        SpeckleAtlas(np.full((2, 2), np.nan))
    atlas = SpeckleAtlas(np.random.default_rng(0).normal(size=(10, 10)))
    with pytest.raises(ParameterError, match="measure_speckles"):
        atlas.speckle_spectrum(np.zeros((10, 10, 3)), 0)
    with pytest.raises(ParameterError, match="measure_speckles"):
        speckle_table(atlas)
    with pytest.raises(ParameterError, match="max_area"):
        atlas.measure_speckles(max_area=0)
    atlas.measure_speckles()
    with pytest.raises(ParameterError, match="factor"):
        speckles_above_noise(atlas, factor=-1)
