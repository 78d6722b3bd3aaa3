"""Images that travel: pixel-exact PNGs, ImageJ TIFF metadata, RGB composites."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _map(seed=0, shape=(17, 23)):
    rng = np.random.default_rng(seed)
    img = rng.gamma(2.0, 10.0, shape).astype(np.float32)
    img[3, 4] = np.nan
    return img


def test_png_is_pixel_exact_with_the_colour_map(tmp_path):
    import matplotlib

    from maxrf.export.images import write_png

    img = _map()
    path = write_png(tmp_path / "m.png", img, cmap="magma", limits=(5, 40))
    got = np.asarray(Image.open(path).convert("RGB"))
    assert got.shape == (17, 23, 3)  # one scan pixel, one image pixel: no axes, no margins
    v = np.clip((np.nan_to_num(img, nan=5.0) - 5) / 35, 0, 1)
    want = np.round(matplotlib.colormaps["magma"](np.round(v * 255) / 255)[..., :3] * 255)
    assert np.abs(got.astype(int) - want).max() <= 1
    up = np.asarray(Image.open(write_png(tmp_path / "u.png", img, cmap="magma", limits=(5, 40),
                                         upscale=3)).convert("RGB"))
    assert up.shape == (51, 69, 3)
    np.testing.assert_array_equal(up[::3, ::3], got)
    np.testing.assert_array_equal(up[2::3, 1::3], got)


def test_png_percentiles_and_element_colours(tmp_path):
    from maxrf.export.images import write_png
    from maxrf.physics import element_color

    img = np.arange(100, dtype=np.float32).reshape(10, 10)
    path = write_png(tmp_path / "fe.png", img, cmap="Fe", percentiles=(10, 90), pixel_size_mm=0.25)
    im = Image.open(path)
    lo, hi = np.percentile(img, (10, 90))
    assert im.text["limits"] == f"[{lo}, {hi}]"
    assert abs(im.info["dpi"][0] - 25.4 / 0.25) < 0.01
    rgb = np.asarray(im.convert("RGB")).astype(float)
    assert (rgb[0, 0] == 0).all()  # below the low limit: black, as the report's element ramp
    mid = rgb[5, 0] / 255  # value 50: the middle of the ramp, the element's own colour
    np.testing.assert_allclose(mid, element_color("Fe")[:3], atol=0.02)


def test_tiff_metadata_reads_back_with_tifffile(tmp_path):
    import tifffile

    from maxrf.export.images import write_tiff

    img = _map(1)
    path = write_tiff(tmp_path / "fe.tiff", img, units="counts", element="Fe", line="Ka",
                      window_keV=(6.2, 6.6), calibration={"gain_keV": 0.01, "offset_keV": -0.95},
                      pixel_size_mm=0.2)
    with tifffile.TiffFile(path) as tf:
        meta = tf.imagej_metadata
        data = tf.asarray()
        xres = tf.pages[0].tags["XResolution"].value
    np.testing.assert_array_equal(data, img)  # float32 values, NaN kept
    assert meta["element"] == "Fe" and meta["line"] == "Ka" and meta["units"] == "counts"
    assert meta["window_kev"] == "6.2000-6.6000" and meta["unit"] == "mm"
    assert "0.01000000 x channel" in meta["calibration"] and "-0.950000" in meta["calibration"]
    assert abs(xres[0] / xres[1] - 5.0) < 1e-6  # 5 pixels per mm


def test_rgb_composite_scales_each_channel(tmp_path):
    from maxrf.export.images import rgb_composite, write_rgb

    a, b, c = _map(2), _map(3) * 10, _map(4) + 100
    rgb = rgb_composite([a, b, c], percentiles=(0, 100))
    for i, m in enumerate((a, b, c)):
        lo, hi = np.nanmin(m), np.nanmax(m)
        want = np.round(np.clip((np.nan_to_num(m, nan=lo) - lo) / (hi - lo), 0, 1) * 255)
        assert np.abs(rgb[..., i].astype(int) - want).max() <= 1
    two = rgb_composite([a, b])
    assert (two[..., 2] == 0).all()
    path = write_rgb(tmp_path / "rgb.png", [a, b, c], ["Fe", "Cu", "Pb"], percentiles=(0, 100))
    im = Image.open(path)
    assert im.size == (23, 17) and im.text["red"] == "Fe" and im.text["blue"] == "Pb"
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), rgb)
    from maxrf.errors import ParameterError

    with pytest.raises(ParameterError):
        rgb_composite([a, b, c, a])


def test_maps_cli_exports(tmp_path, capsys):
    import tifffile

    from maxrf.cli import main
    from maxrf.convert import convert
    from maxrf.synth import make_scan

    make_scan(tmp_path / "scan", height=16, width=20, channels=1024, seed=2,
              elements=["Ca", "Fe", "Cu", "Pb"], n_speckles=1)
    ds = convert(tmp_path / "scan.rpl")
    out = tmp_path / "m"
    assert main(["maps", str(ds.path), "--elements", "Fe,Cu,Pb", "--force", "--method", "window",
                 "--rgb", "Fe,Cu,Pb", "--upscale", "2", "--pixel-size-mm", "0.1", "--quiet",
                 "--out", str(out)]) == 0
    assert Image.open(out / "Fe.png").size == (40, 32)
    assert Image.open(out / "rgb-Fe-Cu-Pb.png").size == (40, 32)
    with tifffile.TiffFile(out / "Cu.tiff") as tf:
        assert tf.imagej_metadata["element"] == "Cu" and tf.asarray().shape == (16, 20)
    assert main(["maps", str(ds.path), "--elements", "Fe", "--force", "--rgb", "Zn",
                 "--out", str(tmp_path / "n")]) == 1
    assert "--rgb" in capsys.readouterr().err and not (tmp_path / "n").exists()
