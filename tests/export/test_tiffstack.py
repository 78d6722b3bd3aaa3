"""Multi-page TIFF of maps: tifffile reads the ImageJ metadata (names, units) and the pages."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from maxrf.convert import convert
from maxrf.errors import LayerMissingError
from maxrf.export.tiffstack import export_tiff_stack
from maxrf.io.ripple import write_ripple


def test_tiff_stack_has_named_slices_and_exact_maps(tmp_path):
    rng = np.random.default_rng(2)
    ds = convert(write_ripple(tmp_path / "s.rpl", rng.poisson(2.0, (9, 11, 64)).astype(np.uint16)),
                 calibrate=False)
    maps = rng.random((4, 9, 11)).astype(np.float32) * 1000
    names = ["Fe", "Cu", "Pb", "Hg"]
    ds.write_layer("element_maps", {"maps": maps, "chi2": np.zeros((9, 11), np.float32)},
                   {"elements": names, "units": "counts per pixel"})
    out = export_tiff_stack(ds, tmp_path / "maps.tif")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        meta = tif.imagej_metadata
        assert meta["Labels"] == [f"{n} (counts per pixel)" for n in names]
        assert meta["slices"] == 4 and "units: counts per pixel" in meta["Info"]
        series = tif.series[0]
        assert series.axes == "ZYX" and series.shape == (4, 9, 11)
        np.testing.assert_array_equal(series.asarray(), maps)
        assert len(tif.pages) == 4


def test_tiff_stack_without_maps_says_what_to_run(tmp_path):
    ds = convert(write_ripple(tmp_path / "s.rpl", np.ones((3, 4, 16), np.uint16)), calibrate=False)
    with pytest.raises(LayerMissingError, match="maxrf maps"):
        export_tiff_stack(ds, tmp_path / "maps.tif")
    assert not (tmp_path / "maps.tif").exists()
