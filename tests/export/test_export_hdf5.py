"""Plain HDF5 export: h5py reads maps, spectra, attributes and the cube back."""

from __future__ import annotations

import h5py
import numpy as np

from maxrf.convert import convert
from maxrf.export.hdf5 import export_hdf5
from maxrf.io.ripple import write_ripple


def test_hdf5_export_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    cube = rng.poisson(2.0, (10, 13, 80)).astype(np.uint16)
    ds = convert(write_ripple(tmp_path / "s.rpl", cube, calibration=(0.01, 0.05)), calibrate=False)
    maps = rng.random((2, 10, 13)).astype(np.float32)
    ds.write_layer("element_maps", {"maps": maps, "chi2": np.zeros((10, 13), np.float32)},
                   {"elements": ["Fe", "Zn"], "units": "counts per pixel"})
    out = export_hdf5(ds, tmp_path / "s.h5", cube=True)
    with h5py.File(out, "r") as f:
        assert f.attrs["gain_keV"] == 0.01 and f.attrs["offset_keV"] == 0.05
        assert list(f.attrs["shape"]) == [10, 13, 80]
        np.testing.assert_allclose(f["spectra/energy_keV"][()], 0.05 + 0.01 * np.arange(80))
        np.testing.assert_allclose(f["spectra/mean"][()], cube.mean(axis=(0, 1)))
        np.testing.assert_array_equal(f["spectra/max"][()], cube.max(axis=(0, 1)))
        assert f["spectra/mean"].attrs["units"] == "counts per pixel"
        np.testing.assert_array_equal(f["maps/element_maps/Zn"][()], maps[1])
        assert f["maps/element_maps/Zn"].attrs["units"] == "counts per pixel"
        stack = f["maps/element_maps/stack"]
        assert list(stack.attrs["names"]) == ["Fe", "Zn"]
        np.testing.assert_array_equal(stack[()], maps)
        np.testing.assert_array_equal(f["cube"][()], cube)
