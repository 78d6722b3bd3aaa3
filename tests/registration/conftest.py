"""A small synthetic scan with its photograph, shared by the registration tests."""

from __future__ import annotations

import pytest

from maxrf.convert import convert
from maxrf.synth import make_scan
from maxrf.synth_photo import make_photo


@pytest.fixture(scope="session")
def photo_scan(tmp_path_factory):
    """(datastack, truth, photo truth, path of a photo of ANOTHER artwork); seeds unused in development."""
    d = tmp_path_factory.mktemp("reg")
    truth = make_scan(d / "scan", height=44, width=56, channels=256, seed=11)
    ds = convert(d / "scan.rpl", d / "scan.datastack")
    pt = make_photo(truth.maps, d / "photo.jpg", seed=11)
    other = make_scan(d / "other", height=44, width=56, channels=64, seed=12, n_speckles=0)
    wrong = make_photo(other.maps, d / "other.jpg", seed=12)
    return ds, truth, pt, wrong.path
