"""segment_map on synthetic drawings with known truth; noise model; errors; layer and CLI.

The accuracy tests use seeds 200-205 of :func:`maxrf.synth_drawing.make_drawing`; the
method's settings were chosen on seeds 0-9 (see benchmarks/bench_segmentation.py).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from maxrf.cli import main
from maxrf.convert import convert
from maxrf.errors import LayerMissingError, OutputExistsError, ParameterError
from maxrf.segmentation import (
    Segmentation,
    noise_model,
    read_segmentation,
    segment_datastack,
    segment_map,
    write_classes_tiff,
)
from maxrf.speckles import SpeckleAtlas
from maxrf.synth_drawing import make_drawing

from conftest import poisson_cube, write_pair


def match(found: np.ndarray, true: np.ndarray, tol: float = 1.5) -> tuple[int, list[float]]:
    """Greedy one-to-one matching of true to found centres within ``tol`` px."""
    used: set[int] = set()
    errs = []
    if len(found) == 0 or len(true) == 0:
        return 0, errs
    tree = cKDTree(found)
    for t in true:
        for d, j in zip(*tree.query(t, k=min(3, len(found)))):
            if d <= tol and j not in used:
                used.add(int(j))
                errs.append(float(d))
                break
    return len(errs), errs


def ignore_iou(seg: Segmentation, truth) -> float:
    """Stroke IoU outside the true particles (their discs + 1 px are not scored)."""
    h, w = truth.shape
    rr, cc = np.mgrid[:h, :w]
    care = np.ones((h, w), dtype=bool)
    for c, r in zip(truth.particle_centres, truth.particle_radii):
        care &= np.hypot(rr - c[0], cc - c[1]) > r + 1.5
    s, t = seg.stroke_mask & care, truth.stroke_mask & care
    return float((s & t).sum() / max((s | t).sum(), 1))


@pytest.fixture(scope="module")
def drawings():
    out = []
    for seed in range(200, 206):
        maps, truth = make_drawing((128, 128), seed=seed)
        out.append((maps, truth, segment_map(maps["Fe"], other_maps=maps, element="Fe")))
    return out


def test_particles_and_strokes_against_truth(drawings):
    tp = n_found = n_true = 0
    errs, ious = [], []
    for _maps, truth, seg in drawings:
        k, e = match(seg.centroids_rc, truth.particle_centres)
        tp += k
        errs += e
        n_found += seg.n_particles
        n_true += len(truth.particle_centres)
        ious.append(ignore_iou(seg, truth))
    assert tp / n_found >= 0.9  # precision within 1.5 px
    assert tp / n_true >= 0.9  # recall
    assert np.mean(errs) < 0.5  # centroid error, pixels
    assert np.mean(ious) >= 0.7  # stroke mask against the true strokes


def test_speckles_on_strokes_found_and_strokes_not_cut_into_speckles(drawings):
    on_found = on_true = false_on_ink = 0
    worst_chain = 0
    for maps, truth, seg in drawings:
        on = truth.particle_on_stroke
        k, _ = match(seg.centroids_rc, truth.particle_centres[on])
        on_found += k
        on_true += int(on.sum())
        # reported particles on the ink where no speckle is: pieces of a stroke
        rc = np.rint(seg.centroids_rc).astype(int)
        on_ink = truth.stroke_mask[rc[:, 0], rc[:, 1]]
        d = cKDTree(truth.particle_centres).query(seg.centroids_rc)[0]
        false = seg.centroids_rc[on_ink & (d > 1.5)]
        false_on_ink += len(false)
        if len(false):  # how many of them fall on the same stroke
            which = [int(np.argmin([cKDTree(p).query(f)[0] for p in truth.stroke_paths]))
                     for f in false]
            worst_chain = max(worst_chain, max(np.bincount(which)))
        # the seed's atlas on the same map cuts the strokes into many more "speckles"
        atlas = SpeckleAtlas(maps["Fe"])
        atlas.measure_speckles()
        assert atlas.n_speckles > 2 * seg.n_particles
    assert on_true >= 10 and on_found / on_true >= 0.8
    assert worst_chain <= 1  # never a chain of false particles along one stroke
    assert false_on_ink <= 0.06 * sum(len(t.particle_centres) for _m, t, _s in drawings)
    seg = drawings[0][2]
    assert seg.table["on_stroke"].any() and not seg.table["on_stroke"].all()


def test_table_columns_and_other_maps(drawings):
    maps, truth, seg = drawings[0]
    for key in ("row", "col", "row_weighted", "col_weighted", "area", "peak", "contrast",
                "Mn", "Cu", "Zn", "Fe"):
        assert len(seg.table[key]) == seg.n_particles
    lab = seg.labels
    for i in range(seg.n_particles):  # per-element columns: the mean over the particle's pixels
        assert seg.table["Ca"][i] == pytest.approx(maps["Ca"][lab == i + 1].mean())
    json.dumps(seg.to_dict())  # JSON-ready (stored as layer attributes)
    assert {"particle_seed", "line_length", "stroke"} <= set(seg.to_dict()["thresholds"])


def test_brass_particle_in_copper_map_with_zinc():
    maps, truth = make_drawing((96, 96), seed=203)
    seg = segment_map(maps["Cu"], other_maps={"Zn": maps["Zn"], "Fe": maps["Fe"]})
    assert seg.n_particles == 1
    assert np.hypot(*(seg.centroids_rc[0] - truth.brass_centre)) < 0.5
    assert seg.table["Zn"][0] > 50 * np.median(maps["Zn"])  # brass: Zn with the Cu


def test_clean_paper_has_few_false_particles():
    n = px = 0
    for seed in (210, 211):
        maps, _ = make_drawing((200, 200), seed=seed, n_strokes=0, n_speckles=0, brass=False)
        seg = segment_map(maps["Fe"])
        n += seg.n_particles
        px += maps["Fe"].size
        assert seg.stroke_mask.sum() == 0
    assert n <= px / 10_000  # at most one false particle per 10,000 pixels


def test_noise_model_is_the_poisson_envelope():
    rng = np.random.default_rng(5)
    level = np.linspace(5, 200, 160)[None, :].repeat(120, axis=0)
    a, b, _ = noise_model(rng.poisson(level).astype(float))
    assert b == pytest.approx(1.0, abs=0.1) and a < 3.0
    a3, b3, _ = noise_model(3.0 * rng.poisson(level))  # scaled counts: variance 3x the level
    assert b3 == pytest.approx(3.0, rel=0.1)


def test_nan_pixels_are_background():
    maps, _ = make_drawing((96, 96), seed=204)
    fe = maps["Fe"].astype(float)
    fe[:20, :20] = np.nan
    seg = segment_map(fe)
    assert (seg.classes[:20, :20] == 0).all()


@pytest.mark.parametrize("bad, match_text", [
    (np.zeros((4, 30, 30)), "2-D"),
    (np.zeros((5, 5)), "too small"),
    (np.full((20, 20), np.inf), "infinite"),
    (np.full((20, 20), np.nan), "only NaN"),
    ([["a"] * 20] * 20, "numeric"),
])
def test_bad_maps(bad, match_text):
    with pytest.raises(ParameterError, match=match_text):
        segment_map(bad)


@pytest.mark.parametrize("kw", [dict(max_radius=0), dict(line_length=5), dict(n_angles=2),
                                dict(significance=-1), dict(noise=(0, 0)), dict(along=0),
                                dict(other_maps={"Mn": np.zeros((3, 3))})])
def test_bad_options(kw):
    maps, _ = make_drawing((32, 32), seed=0, n_strokes=1, n_speckles=1)
    with pytest.raises(ParameterError):
        segment_map(maps["Fe"], **kw)


def test_atlas_particles_only(drawings):
    maps, truth, seg = drawings[1]
    seed_atlas = SpeckleAtlas(maps["Fe"])
    seed_atlas.measure_speckles()
    atlas = SpeckleAtlas(maps["Fe"], segmentation=seg)
    atlas.measure_speckles()
    assert atlas.n_speckles == seg.n_particles < seed_atlas.n_speckles
    k, errs = match(atlas.weighted_centroids_rc, truth.particle_centres)
    assert k >= 0.9 * len(truth.particle_centres) and np.mean(errs) < 0.6
    assert SpeckleAtlas(maps["Fe"], particles_only=True).segmentation.n_particles == seg.n_particles
    with pytest.raises(ParameterError, match="shape"):
        SpeckleAtlas(maps["Fe"][:50], segmentation=seg)


@pytest.fixture
def drawn_ds(tmp_path):
    maps, truth = make_drawing((48, 64), seed=205, n_strokes=3, n_speckles=5)
    ds = convert(write_pair(tmp_path, poisson_cube(0, shape=(48, 64, 16))), calibrate=False)
    names = ["Mn", "Fe", "Cu", "Zn"]
    ds.write_layer("element_maps", {"maps": np.stack([maps[e] for e in names]),
                                    "chi2": np.ones((48, 64))},
                   {"elements": names, "method": "fit"})
    return ds, maps, truth


def test_segment_datastack_stores_the_layer(drawn_ds):
    ds, maps, truth = drawn_ds
    seg = segment_datastack(ds, "Fe")
    back = read_segmentation(ds)
    np.testing.assert_array_equal(back.classes, seg.classes)
    np.testing.assert_array_equal(back.labels, seg.labels)
    np.testing.assert_allclose(back.table["row_weighted"], seg.table["row_weighted"])
    assert back.element == "Fe" and seg.evidence["source"].startswith("element map")
    assert "Mn" in seg.table and "Zn" in seg.table
    with pytest.raises(LayerMissingError):
        segment_datastack(ds, "Pb")


def test_cli_speckles_classes_csv_plot(drawn_ds, tmp_path, capsys):
    import tifffile

    ds, maps, truth = drawn_ds
    tif, out, png = tmp_path / "c.tiff", tmp_path / "s.csv", tmp_path / "o.png"
    code = main(["speckles", str(ds.path), "--element", "Fe", "--classes", str(tif),
                 "--out", str(out), "--plot", str(png)])
    assert code == 0, capsys.readouterr().err
    classes = tifffile.imread(tif)
    assert classes.dtype == np.uint8 and classes.shape == maps["Fe"].shape
    assert set(np.unique(classes)) <= {0, 1, 2}
    np.testing.assert_array_equal(classes, ds.read("segmentation")["classes"])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == int(classes.max() == 2 and ds.read("segmentation")["labels"].max())
    assert {"row", "col", "row_weighted", "col_weighted", "area", "peak", "Mn", "Zn"} <= set(rows[0])
    k, _ = match(np.array([[float(r["row_weighted"]), float(r["col_weighted"])] for r in rows]),
                 truth.particle_centres)
    assert k >= len(truth.particle_centres) - 1
    assert png.stat().st_size > 1000


def test_classes_tiff_errors(tmp_path):
    classes = np.zeros((10, 12), dtype=np.uint8)
    p = write_classes_tiff(classes, tmp_path / "c.tif")
    with pytest.raises(OutputExistsError):
        write_classes_tiff(classes, p)
    with pytest.raises(Exception, match="folder"):
        write_classes_tiff(classes, tmp_path / "nope" / "c.tif")
    assert not list(tmp_path.glob("*.tmp"))


def test_report_shows_overlay_and_particle_table(drawn_ds):
    from maxrf.report import build_report

    ds, maps, truth = drawn_ds
    html = build_report(ds)
    assert 'data-missing="segmentation"' in html  # not computed yet: said so
    seg = segment_datastack(ds, "Fe")
    html = build_report(ds)
    assert 'data-segmentation="map"' in html and "data:image/png;base64," in html
    table = html.split('data-segmentation="table"')[1].split("</table>")[0]
    assert table.count("<tr>") == seg.n_particles + 1  # header + one row a particle
    assert f"{seg.n_particles} particles" in html
    assert 'data-layer-status="segmentation" data-state="computed"' in html


def test_viewer_serves_classes_and_particles(drawn_ds):
    from maxrf.viewer.app import ViewerApp

    ds, maps, truth = drawn_ds
    app = ViewerApp(ds)
    assert app.segmentation()["computed"] is False
    seg = segment_datastack(ds, "Fe")
    out = app.segmentation()  # picks up the new layer
    import base64

    classes = np.frombuffer(base64.b64decode(out["classes"]["data"]), "<f4").reshape(
        out["classes"]["shape"])
    np.testing.assert_array_equal(classes, seg.classes)
    assert len(out["particles"]) == seg.n_particles and "Mn" in out["particles"][0]
    assert any(s["name"] == "segmentation" and s["state"] == "computed"
               for s in app.info()["layers"])


def test_cli_bad_output_folder_writes_nothing(drawn_ds, tmp_path, capsys):
    ds, _maps, _truth = drawn_ds
    code = main(["segment", str(ds.path), "--element", "Fe",
                 "--classes", str(tmp_path / "no" / "c.tiff")])
    err = capsys.readouterr().err
    assert code == 1 and "output folder does not exist" in err
    assert len(err.strip().splitlines()) == 1
    assert "segmentation" not in ds.layers  # nothing stored
