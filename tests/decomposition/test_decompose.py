"""decompose/cluster on synthetic paintings of known materials (seeds not used in development)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from maxrf.cli import main
from maxrf.convert import convert
from maxrf.decomposition import Decomposition, cluster, decompose
from maxrf.errors import MissingFileError, NotADataStackError, ParameterError
from maxrf.store import DataStack
from maxrf.synth_materials import make_material_scan


@pytest.fixture(scope="module")
def painting(tmp_path_factory):
    d = tmp_path_factory.mktemp("painting")
    truth = make_material_scan(d / "p.rpl", height=40, width=48, seed=11)
    ds = convert(truth.rpl_path, d / "p.datastack")
    return truth, ds


@pytest.fixture(scope="module")
def stored(painting):
    return decompose(painting[1], store=True)


def _best_match(truth_map: np.ndarray, maps: np.ndarray) -> tuple[int, float]:
    r = [np.corrcoef(truth_map.ravel(), m.ravel())[0, 1] for m in maps]
    j = int(np.nanargmax(r))
    return j, float(r[j])


def test_components_match_the_materials(painting, stored):
    truth, _ = painting
    maps = np.asarray(stored.maps[:])
    assert stored.rank["chosen"] == "noise"
    # five materials and the scatter, which is in every pixel with its own texture
    assert stored.n_components == len(truth.materials) + 1
    for m, name in enumerate(truth.materials):
        j, r = _best_match(truth.abundances[m], maps)
        a, b = truth.spectra[m], stored.components[j]
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert r >= 0.9, (name, r)
        assert cos >= 0.95, (name, cos)


def test_abundances_are_counts(painting, stored):
    """Abundances are counts: per pixel they add up to the pixel's counts in the fitted range,
    and a paint's map is about its true counts (a paint takes a little of the shared ground
    and scatter with it, hence the tolerance)."""
    truth, ds = painting
    maps = np.asarray(stored.maps[:])
    lo, hi = int(stored.edges[0]), int(stored.edges[-1])
    counts = np.asarray(ds.cube[:, :, lo:hi].sum(axis=2), dtype=float)
    np.testing.assert_allclose(maps.sum(axis=0).mean(), counts.mean(), rtol=0.02)
    for m in range(1, len(truth.materials)):
        j, _ = _best_match(truth.abundances[m], maps)
        present = truth.abundances[m] > 0
        ratio = maps[j][present].sum() / truth.abundances[m][present].sum()
        assert 0.7 < ratio < 1.4, (truth.materials[m], ratio)


def test_components_labelled_with_their_elements(painting, stored):
    truth, _ = painting
    from maxrf.synth_materials import MATERIALS

    maps = np.asarray(stored.maps[:])
    for m, name in enumerate(truth.materials):
        j, _ = _best_match(truth.abundances[m], maps)
        main_element = max(MATERIALS[name], key=MATERIALS[name].get)
        assert stored.elements[j][:1] == [main_element], (name, stored.elements[j])


def test_classes_match_the_layout(painting, stored):
    truth, _ = painting
    labels = np.asarray(stored.clustering.labels[:])
    assert labels.shape == truth.labels.shape
    assert adjusted_rand_score(truth.labels.ravel(), labels.ravel()) >= 0.8
    # class mean spectra: the mean of the cube over each class, computed directly
    cube = np.asarray(painting[1].cube)
    for c in range(stored.clustering.n_classes):
        sel = labels == c
        if sel.any():
            np.testing.assert_allclose(stored.clustering.spectra[c], cube[sel].mean(axis=0), rtol=1e-6)
            assert stored.clustering.pixels[c] == sel.sum()


def test_stored_equals_in_memory_and_layers(painting, stored):
    mem = decompose(painting[1], store=False)
    np.testing.assert_allclose(np.asarray(stored.maps[:]), mem.maps, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(stored.clustering.labels[:]), mem.clustering.labels)
    ds = DataStack(painting[1].path)
    assert {"decomposition", "clusters"} <= set(ds.layers)
    layer = ds.read("decomposition")
    assert layer["components"].shape == stored.components.shape
    assert layer.attrs["n_components"] == stored.n_components
    assert layer.attrs["quality"] in ("good", "doubtful") and layer.attrs["checks"]


def test_verdict_carries_evidence(stored):
    assert isinstance(stored, Decomposition)
    names = {c["name"] for c in stored.checks}
    assert {"rank", "unique", "components explained", "reconstruction"} <= names
    chi = next(c for c in stored.checks if c["name"] == "reconstruction")
    assert chi["passed"]  # the model is exact up to Poisson noise
    assert stored.quality == ("good" if all(c["passed"] for c in stored.checks) else "doubtful")


def test_too_few_components_is_doubtful(painting):
    """Two components cannot explain five materials: the reconstruction check fails."""
    r = decompose(painting[1], 2, store=False, classes=False)
    assert r.n_components == 2 and r.rank["chosen"] == "given"
    assert r.quality == "doubtful"
    assert not next(c for c in r.checks if c["name"] == "reconstruction")["passed"]


def test_cli_json_and_tiffs(painting, stored, tmp_path, capsys):
    import tifffile

    out = tmp_path / "dec"
    assert main(["cluster", str(painting[1].path), "--out", str(out), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["components"]) >= 2
    for comp in doc["components"]:
        img = tifffile.imread(comp["map"])
        assert img.dtype == np.float32 and img.shape == painting[0].labels.shape
        assert isinstance(comp["elements"], list)
    classes = tifffile.imread(doc["classes_map"])
    assert classes.dtype == np.uint8 and classes.max() < doc["classes"]["n_classes"]


@pytest.mark.parametrize("kwargs, match", [
    ({"n_components": 0}, "n_components"),
    ({"n_components": 2.5}, "n_components"),
    ({"n_classes": -1}, "n_classes"),
    ({"method": "ica"}, "unknown decomposition method"),
])
def test_bad_parameters(painting, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        decompose(painting[1], store=False, **kwargs)


def test_not_a_datastack(tmp_path, capsys):
    with pytest.raises(MissingFileError):
        cluster(tmp_path / "nothing.datastack")
    (tmp_path / "empty.datastack").mkdir()
    with pytest.raises(NotADataStackError):
        decompose(tmp_path / "empty.datastack")
    assert main(["decompose", str(tmp_path / "empty.datastack")]) == 1
    err = capsys.readouterr().err
    assert "empty.datastack" in err and err.count("\n") == 1


def test_report_and_viewer_show_components(painting, stored, tmp_path):
    from maxrf.report import build_report
    from maxrf.report.layers import map_entries

    entries, _ = map_entries(DataStack(painting[1].path))
    comps = [e for e in entries if e.layer == "decomposition"]
    assert len(comps) == stored.n_components
    assert any(e.layer == "clusters" for e in entries)  # the viewer can pick the class map
    html = build_report(DataStack(painting[1].path))
    assert html.count("data-component-block=") == stored.n_components
    assert "data-map='classes'" in html and 'data-spectrum="classes"' in html
    # every component spectrum carries the line markers of its elements
    for i, els in enumerate(stored.elements):
        block = html.split(f"data-component-block='{i}'")[1].split("data-component-block=")[0]
        for el in els[:1]:
            assert f">{el}<" in block or f"{el} K" in block or f"{el} L" in block
