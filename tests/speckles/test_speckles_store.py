"""find_speckles on a datastack: map lookup, stored layer, CLI table."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.errors import LayerMissingError
from maxrf.speckles import find_speckles

from conftest import poisson_cube, write_pair


def speckle_map(seed, shape=(40, 50), n=6):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    img = rng.normal(0, 1.0, shape)
    centres = []
    while len(centres) < n:
        c = rng.uniform(4, np.array(shape) - 4)
        if all(np.hypot(*(c - o)) > 8 for o in centres):
            centres.append(c)
    for r0, c0 in centres:
        img += 40 * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * 1.0**2))
    return img.astype(np.float32), np.array(centres)


@pytest.fixture
def ds(tmp_path):
    return convert(write_pair(tmp_path, poisson_cube(0, shape=(40, 50, 16))), calibrate=False)


def test_find_speckles_from_element_maps(ds, seed):
    fe, centres = speckle_map(seed)
    cu = np.full_like(fe, 2.0)
    ds.write_layer("element_maps", {"maps": np.stack([fe, cu]), "chi2": np.ones_like(fe)},
                   {"elements": ["Fe", "Cu"], "method": "fit"})
    atlas, table = find_speckles(ds, "Fe", max_area=30)
    found = np.c_[table["row"], table["col"]]
    err = np.array([np.min(np.hypot(*(found - c).T)) for c in centres])
    assert (err < 1.5).all() and np.mean(err) < 1.0  # every true speckle found
    # few false ones: a 3-sigma cut passes ~0.13% of 2000 noise pixels
    assert len(found) - len(centres) <= 3
    np.testing.assert_allclose(table["Cu"], 2.0)
    layer = ds.read("speckles")
    assert layer.attrs["element"] == "Fe" and len(layer.attrs["table"]) == len(found)
    assert set(np.unique(layer["labels"])) == {0, *table["label"].tolist()}


def test_missing_maps_error(ds):
    with pytest.raises(LayerMissingError, match="maxrf maps"):
        find_speckles(ds, "Fe")


def test_cli_writes_csv(ds, tmp_path):
    fe, centres = speckle_map(4)
    ds.write_layer("element_maps", {"maps": fe[None], "chi2": np.ones_like(fe)},
                   {"elements": ["Fe"], "method": "fit"})
    out = tmp_path / "s.csv"
    r = subprocess.run([sys.executable, "-m", "maxrf", "speckles", str(ds.path), "--element", "Fe",
                        "--max-area", "30", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(centres) <= len(rows) <= len(centres) + 3
    assert {"label", "row", "col", "area", "peak"} <= set(rows[0])
