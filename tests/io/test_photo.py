"""Photo reading: formats, bit depths, downsampling against numpy box means, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from maxrf.errors import MissingFileError
from maxrf.io.photo import PhotoFormatError, photo_size, read_photo


@pytest.fixture
def rgb():
    rng = np.random.default_rng(3)
    return (rng.random((120, 160, 3)) * 255).astype(np.uint8)


def _box(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape[0] // f, a.shape[1] // f
    return a[: h * f, : w * f].reshape(h, f, w, f, -1).mean(axis=(1, 3))


def test_png_and_16bit_tiff_are_box_averaged(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgb.astype(np.uint16) * 257, rowsperstrip=7, compression="zlib")
    ref = _box(rgb.astype(float) / 255, 4)
    png = read_photo(tmp_path / "a.png", factor=4)
    tif = read_photo(tmp_path / "a.tif", factor=4)
    assert png.image.shape == (30, 40, 3) and png.size == (160, 120) and png.factor == 4
    assert np.abs(png.image - ref).max() < 1 / 255
    assert tif.bits == 16 and np.abs(tif.image - ref).max() < 1e-6
    assert photo_size(tmp_path / "a.tif") == (160, 120)
    # reduced pixel (0, 0) covers original pixels 0..3: centre at 1.5
    assert np.allclose(png.to_original([[0, 0], [1, 2]]), [[1.5, 1.5], [5.5, 9.5]])


def test_jpeg_uses_decoder_scaling_and_max_side(tmp_path, rgb):
    smooth = np.repeat(np.repeat(rgb[::8, ::8], 8, axis=0), 8, axis=1)  # 8x8 blocks: DCT-exact
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    ph = read_photo(tmp_path / "a.jpg", max_side=20)
    assert ph.factor == 8 and ph.image.shape == (15, 20, 3)
    assert np.abs(ph.image - rgb[::8, ::8] / 255).mean() < 0.05
    grey = read_photo(tmp_path / "a.jpg", factor=1).grey
    assert grey.shape == (120, 160)


def test_grey_tiff_repeated_to_three_channels(tmp_path):
    a = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64)
    tifffile.imwrite(tmp_path / "g.tif", a)
    ph = read_photo(tmp_path / "g.tif", factor=2)
    assert ph.image.shape == (24, 32, 3)
    assert np.allclose(ph.image[..., 0], _box(a[..., None].astype(float), 2)[..., 0] / 65535, atol=1e-6)


def test_bad_files_raise_clear_errors(tmp_path, rgb):
    with pytest.raises(MissingFileError, match="not found"):
        read_photo(tmp_path / "none.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image" * 10)
    with pytest.raises(PhotoFormatError, match="junk.jpg"):
        read_photo(tmp_path / "junk.jpg")
    Image.fromarray(rgb).save(tmp_path / "t.jpg", quality=90)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(PhotoFormatError, match="t.jpg"):
        read_photo(tmp_path / "t.jpg", factor=1)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 40)
    with pytest.raises(PhotoFormatError, match="bad.tif"):
        read_photo(tmp_path / "bad.tif")
