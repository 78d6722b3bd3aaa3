"""Overlays and mosaics on the photo grid, against the truth warped independently."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from maxrf.cli import main
from maxrf.convert import convert
from maxrf.errors import LayerMissingError, ParameterError
from maxrf.export.overlay import mosaic, warp_to_photo
from maxrf.io.photo import sha256_file
from maxrf.registration.result import Registration, write_registration
from maxrf.synth_photo import make_photo

from conftest import poisson_cube, write_pair

ELEMENTS = ["Fe", "Pb"]


def _truth_maps(h: int = 40, w: int = 60) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    return {"Fe": (100 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float32),
            "Pb": (50 + 0.8 * xx + 0.5 * yy).astype(np.float32)}


def _scan_part(tmp, name: str, maps: dict[str, np.ndarray], matrix: np.ndarray, photo: str,
               size: tuple[int, int], quality: str = "good"):
    h, w = next(iter(maps.values())).shape
    rpl = write_pair(tmp, poisson_cube(0, (h, w, 32)), name)
    ds = convert(rpl, tmp / f"{name}.datastack", calibrate=False)
    ds.write_layer("element_maps", {"maps": np.stack([maps[e] for e in ELEMENTS])}, {"elements": ELEMENTS})
    write_registration(ds, Registration(matrix=matrix, method="points", photo_path=photo,
                                        photo_sha256=sha256_file(photo), photo_size=size,
                                        scan_shape=(h, w), quality=quality))
    return ds


def test_warp_picks_the_scan_pixel_beneath_each_photo_pixel():
    img = np.arange(12, dtype=float).reshape(3, 4)
    m = np.array([[10.0, 0, 5], [0, 10.0, 7], [0, 0, 1]])  # scan pixel (c, r) centred at (10c+5, 10r+7)
    out = warp_to_photo(img, m, (60, 40))
    for x, y in [(5, 7), (36, 28), (14, 2), (0, 2)]:  # photo pixels inside
        c, r = int(np.floor((x - 5) / 10 + 0.5)), int(np.floor((y - 7) / 10 + 0.5))
        assert out[y, x] == img[r, c]
    assert np.isnan(out[0, 50]) and np.isnan(out[39, 0])  # beyond the scan's last pixel edge
    assert np.isfinite(out[2, 0])  # x = 0 is inside the first pixel's edge at -0.5 * 10 + 5


def test_overlay_export_and_mosaic_equal_the_truth_within_the_noise(tmp_path):
    truth = _truth_maps()
    pt = make_photo(truth, tmp_path / "photo.png", seed=21, scale=3.0)
    sigma = 0.5
    rng = np.random.default_rng(1)
    parts = []
    for name, c0, c1 in (("left", 0, 36), ("right", 24, 60)):
        shift = np.array([[1.0, 0, c0], [0, 1, 0], [0, 0, 1]])
        noisy = {e: truth[e][:, c0:c1] + rng.normal(0, sigma, truth[e][:, c0:c1].shape).astype(np.float32)
                 for e in ELEMENTS}
        parts.append(_scan_part(tmp_path, name, noisy, pt.matrix @ shift, pt.path, pt.size))
    result = mosaic(parts, pt.path, ELEMENTS, tmp_path / "mos", max_side=None)
    for e in ELEMENTS:
        ref = warp_to_photo(truth[e], pt.matrix, pt.size)
        covered = np.isfinite(result[e])
        assert np.array_equal(covered, np.isfinite(ref))  # the two parts cover the whole scan
        assert np.abs(result[e][covered] - ref[covered]).max() < 5 * sigma
    assert (tmp_path / "mos" / "mosaic_Fe.tiff").exists()
    # one scan's overlay: float TIFF equals the warped map, PNG transparent outside the scan
    assert main(["overlay", str(parts[0].path), "--elements", "Fe,Pb", "--out", str(tmp_path / "ov"),
                 "--max-side", "0"]) == 0
    tif = tifffile.imread(tmp_path / "ov" / "Fe.tiff")
    png = np.asarray(Image.open(tmp_path / "ov" / "Fe.png"))
    assert tif.shape == (pt.size[1], pt.size[0]) and png.shape == tif.shape + (4,)
    assert np.all(png[..., 3][np.isnan(tif)] == 0)
    comp = np.asarray(Image.open(tmp_path / "ov" / "composite_Fe-Pb.png"))
    assert np.all(comp[..., 3][np.isfinite(tif)] == 255)


def test_mosaic_refuses_failed_missing_or_foreign_registrations(tmp_path):
    truth = _truth_maps(20, 24)
    pt = make_photo(truth, tmp_path / "p.png", seed=2, scale=2.0)
    other = make_photo(truth, tmp_path / "q.png", seed=3, scale=2.0)
    good = _scan_part(tmp_path, "good", truth, pt.matrix, pt.path, pt.size)
    failed = _scan_part(tmp_path, "bad", truth, pt.matrix, pt.path, pt.size, quality="failed")
    with pytest.raises(ParameterError, match="failed"):
        mosaic([good, failed], pt.path, ELEMENTS)
    with pytest.raises(ParameterError, match="another photograph"):
        mosaic([good], other.path, ELEMENTS)
    rpl = write_pair(tmp_path, poisson_cube(1, (20, 24, 16)), "unreg")
    unreg = convert(rpl, tmp_path / "unreg.datastack", calibrate=False)
    with pytest.raises(LayerMissingError, match="not registered"):
        mosaic([good, unreg], pt.path, ELEMENTS)
    assert main(["mosaic", str(good.path), str(failed.path), "--photo", pt.path, "--elements", "Fe",
                 "--out", str(tmp_path / "m")]) == 1
