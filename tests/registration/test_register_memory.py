"""Registering onto a large photograph never holds it at full resolution.

A 4000 x 3000 JPEG is read at half its size (2000 x 1500; Pillow's draft decodes it at
that size). The peak of a fresh process registering onto it, less the peak of the same
registration onto a small photo of the same scan (same code paths, same libraries'
pages), must stay below what the full-resolution photo alone would take as float32 RGB
(12 bytes per original pixel, 144 MB) plus the four float32 channels at the read
resolution (16 bytes per read pixel, 48 MB), which every registration makes: a decode at
full resolution, or a full-resolution float copy anywhere, would exceed it. The large
photo is a 1000 x 750 rendering enlarged four times: its pixels, not its detail, are what
the bound is about.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from maxrf.synth_drawing import make_drawing
from maxrf.synth_photo import make_photo

from conftest import PEAK_RSS


def _peak(maps_path, photo_path) -> int:
    code = (
        "import numpy as np\n"
        "from maxrf.registration import register_image\n"
        f"maps = np.load({str(maps_path)!r})\n"
        f"r = register_image(maps.sum(axis=0), {str(photo_path)!r}, maps=maps, label='drawing')\n"
        "assert r.quality != 'failed', r.quality\n"
        + PEAK_RSS
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stdout.split()[-1])


def test_registering_a_large_photo_never_holds_it_at_full_resolution(tmp_path):
    maps, truth = make_drawing((100, 130), seed=3, n_strokes=20, n_speckles=40)
    np.save(tmp_path / "maps.npy", np.stack(list(maps.values())))
    make_photo(truth.expected, tmp_path / "render.png", seed=3, size=(1000, 750))
    with Image.open(tmp_path / "render.png") as im:
        im.resize((4000, 3000), Image.Resampling.BICUBIC).save(tmp_path / "big.jpg", quality=85)
    small = make_photo(truth.expected, tmp_path / "small.jpg", seed=3)
    assert max(small.size) < 1000  # the baseline's photo is negligible
    full_px, read_px = 4000 * 3000, (4000 // 2) * (3000 // 2)  # read at max_side 2048: factor 2
    extra = _peak(tmp_path / "maps.npy", tmp_path / "big.jpg") - _peak(tmp_path / "maps.npy", small.path)
    assert extra < 12 * full_px + 16 * read_px, f"{extra / 2**20:.0f} MB above the small photo's peak"
