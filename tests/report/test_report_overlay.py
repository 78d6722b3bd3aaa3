"""Report section "Maps on the photograph": present only for registered scans, honest otherwise."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from maxrf.convert import convert
from maxrf.io.photo import sha256_file
from maxrf.registration.result import Registration, write_registration
from maxrf.report import build_report
from maxrf.synth_photo import make_photo

from conftest import poisson_cube, write_pair


def _registered(tmp_path, quality: str = "good"):
    h, w = 20, 30
    yy, xx = np.mgrid[0:h, 0:w]
    maps = {"Fe": (xx * 3.0).astype(np.float32), "Pb": (yy * 2.0 + 1).astype(np.float32)}
    pt = make_photo(maps, tmp_path / "photo.png", seed=4, scale=3.0)
    ds = convert(write_pair(tmp_path, poisson_cube(0, (h, w, 32)), "s"), tmp_path / "s.datastack",
                 calibrate=False)
    ds.write_layer("element_maps", {"maps": np.stack([maps["Fe"], maps["Pb"]])}, {"elements": ["Fe", "Pb"]})
    write_registration(ds, Registration(matrix=pt.matrix, method="points", photo_path=pt.path,
                                        photo_sha256=sha256_file(pt.path), photo_size=pt.size,
                                        scan_shape=(h, w), quality=quality, scale=pt.scale))
    return ds, pt


def test_report_shows_maps_over_the_photo(tmp_path):
    ds, pt = _registered(tmp_path)
    html = build_report(ds)
    sec = re.search(r'<section id="photo-overlay">(.*?)</section>', html, re.S)
    assert sec, "registered scan: the section is there"
    body = sec.group(1)
    assert 'class="ov-opacity"' in body and 'class="ov-swipe"' in body
    assert body.count('class="ov-map"') == 2 and ">Fe<" in body and ">Pb<" in body
    # the Fe overlay is transparent outside the scan and opaque where Fe is high
    uri = re.findall(r'class="ov-map" data-i="0" src="data:image/png;base64,([^"]+)"', body)[0]
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))))
    assert rgba.shape[:2] == (pt.size[1], pt.size[0])
    assert rgba[0, 0, 3] == 0 and rgba[..., 3].max() > 200


def test_failed_or_changed_photo_is_said_not_drawn(tmp_path):
    ds, pt = _registered(tmp_path, quality="failed")
    body = re.search(r'<section id="photo-overlay">(.*?)</section>', build_report(ds), re.S).group(1)
    assert "failed" in body and 'class="ov-map"' not in body
    ds2, pt2 = _registered(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(pt2.path)
    body = re.search(r'<section id="photo-overlay">(.*?)</section>', build_report(ds2), re.S).group(1)
    assert "changed" in body and 'class="ov-map"' not in body


def test_unregistered_scan_has_no_photo_section(tmp_path):
    ds = convert(write_pair(tmp_path, poisson_cube(0, (8, 9, 16)), "u"), tmp_path / "u.datastack",
                 calibrate=False)
    assert 'id="photo-overlay"' not in build_report(ds)
