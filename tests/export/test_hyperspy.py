"""HyperSpy export: HyperSpy's own loader (hs.load, lazy) reads the cube and the maps back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from maxrf.convert import convert
from maxrf.errors import OutputExistsError, ParameterError
from maxrf.export.hyperspy import export_hyperspy
from maxrf.io.ripple import write_ripple

GAIN, OFFSET = 0.0195, -0.12
NAMES = ["Fe", "Cu", "Pb"]


def scan_with_maps(tmp_path, shape=(12, 15, 200)):
    rng = np.random.default_rng(7)
    cube = rng.poisson(3.0, size=shape).astype(np.uint16)
    ds = convert(write_ripple(tmp_path / "s.rpl", cube, calibration=(GAIN, OFFSET)), calibrate=False)
    maps = rng.random((len(NAMES), *shape[:2])).astype(np.float32)
    ds.write_layer("element_maps", {"maps": maps, "chi2": np.zeros(shape[:2], np.float32)},
                   {"elements": NAMES, "units": "counts per pixel"})
    return ds, cube, maps


def test_hspy_opens_lazily_in_hyperspy_with_calibrated_energy(tmp_path):
    import dask.array as da
    import hyperspy.api as hs  # a test dependency (pyproject [test])

    ds, cube, maps = scan_with_maps(tmp_path)
    cube_file, maps_file = export_hyperspy(ds, tmp_path / "out.hspy")
    s = hs.load(cube_file, lazy=True)
    assert s._lazy and isinstance(s.data, da.Array)
    assert s.axes_manager.signal_shape == (200,) and s.axes_manager.navigation_shape == (15, 12)
    energy = s.axes_manager.signal_axes[0]
    assert energy.units == "keV" and energy.scale == pytest.approx(GAIN)
    assert energy.offset == pytest.approx(OFFSET)
    np.testing.assert_allclose(energy.axis, np.asarray(ds.energies))
    np.testing.assert_array_equal(s.data[3:7].compute(), cube[3:7])
    with h5py.File(cube_file, "r") as f:  # stored chunked: HyperSpy reads a chunk, not the cube
        (group,) = f["Experiments"].values()
        assert group["data"].chunks is not None and group["data"].chunks[2] == 200
    m = hs.load(maps_file, lazy=True)
    assert list(m.metadata.Sample.elements) == NAMES
    assert list(m.original_metadata.maps.names) == NAMES
    assert m.axes_manager.signal_shape == (15, 12)
    np.testing.assert_array_equal(m.data.compute(), maps)


def test_hspy_readable_by_rosettasciio_alone(tmp_path):
    from rsciio.hspy import file_reader

    ds, cube, _ = scan_with_maps(tmp_path)
    cube_file, _ = export_hyperspy(ds, tmp_path / "out.hspy")
    (item,) = file_reader(str(cube_file), lazy=True)
    assert [a["name"] for a in item["axes"]] == ["y", "x", "Energy"]
    assert item["axes"][2]["scale"] == pytest.approx(GAIN)
    np.testing.assert_array_equal(np.asarray(item["data"]), cube)


def test_hyperspy_export_refusals(tmp_path):
    ds, _, _ = scan_with_maps(tmp_path)
    with pytest.raises(ParameterError, match="zarr 2"):
        export_hyperspy(ds, tmp_path / "out.zspy", fmt="zspy")
    export_hyperspy(ds, tmp_path / "out.hspy", maps=False)
    with pytest.raises(OutputExistsError):
        export_hyperspy(ds, tmp_path / "out.hspy")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_zspy_refusal_is_one_line_naming_why_and_the_alternatives(tmp_path, capsys):
    import rsciio
    import zarr

    from maxrf.cli import main

    ds, _, _ = scan_with_maps(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(ds.path), "--to", "zspy", "-o", str(tmp_path / "out.zspy")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert rsciio.__version__ in err and zarr.__version__ in err and "NestedDirectoryStore" in err
    assert "--to hspy" in err and "--to h5" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_the_refusal_reason_holds_for_the_installed_rosettasciio(tmp_path):
    """rosettasciio's own zspy writer fails with the installed zarr, for the reason given.

    When a rosettasciio that writes zspy with zarr 3 is installed this fails: then add the
    zspy export (with an hs.load(lazy=True) round trip) instead of the refusal."""
    import dask.array as da
    import zarr
    from rsciio.zspy import file_writer

    assert int(zarr.__version__.split(".")[0]) >= 3
    signal = {"data": da.zeros((2, 3, 8), dtype="u2", chunks=(1, 3, 8)),
              "axes": [{"name": n, "size": s, "navigate": n != "E"}
                       for n, s in (("y", 2), ("x", 3), ("E", 8))],
              "metadata": {"General": {"title": "t"}, "Signal": {"signal_type": ""}},
              "original_metadata": {}, "attributes": {"_lazy": True}}
    with pytest.raises(AttributeError, match="NestedDirectoryStore"):
        file_writer(str(tmp_path / "t.zspy"), signal)
