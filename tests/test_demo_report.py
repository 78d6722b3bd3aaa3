"""The demo as a new user runs it (``maxrf demo``): the report of the drawing phantom holds
no near-duplicate peak maps, and hotmax spectra carry one numbering everywhere.

References: the phantom's truth file (its detector resolution and elements) and the
stored ``hotmax`` layer, not the report's own numbers.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from maxrf import DataStack

pytestmark = pytest.mark.slow

#: Si detector: energy per electron-hole pair (keV) and Fano factor
PAIR_KEV, FANO = 0.00365, 0.114


def fwhm_keV(e_keV: float, fwhm_at_6keV: float) -> float:
    """Detector resolution at ``e_keV`` from its value at Mn Ka (5.895 keV), Fano's law."""
    return float(np.sqrt(fwhm_at_6keV**2 + 2.3548**2 * PAIR_KEV * FANO * (e_keV - 5.895)))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from maxrf.cli import main

    folder = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", str(folder)]) == 0
    truth = json.loads((folder / "demo-scan.truth.json").read_text())
    return folder, truth, (folder / "report.html").read_text()


def test_demo_report_has_no_near_duplicate_peak_maps(demo):
    from maxrf.physics import line_energy

    _folder, truth, html = demo
    cards = re.findall(r'data-card="peak:peak-\d+-(-?[0-9.]+)keV"', html)
    keV = np.sort(np.array([float(v) for v in cards]))
    assert 10 <= len(keV) <= 40, keV  # the report held 66, many near-duplicates
    for a, b in zip(keV[:-1], keV[1:]):  # no two peaks within the detector resolution
        assert b - a >= fwhm_keV((a + b) / 2, truth["fwhm_at_6keV"]), (a, b)
    for el in truth["elements"]:  # and every element's main line keeps its peak map
        line = line_energy(el, "La" if el == "Pb" else "Ka")
        assert np.min(np.abs(keV - line)) < 0.1, (el, line, keV)


def test_hotmax_numbering_is_the_same_in_report_cli_and_layer(demo, capsys):
    from maxrf.cli import main

    folder, _truth, html = demo
    ds = DataStack(folder / "demo-scan.datastack")
    pixels = np.asarray(ds.read("hotmax")["spectrum_pixels"]).tolist()
    headings = [(int(n), [int(r), int(c)]) for n, r, c in
                re.findall(r"<h3>Hotmax spectrum (\d+) — pixel row (\d+), column (\d+)", html)]
    assert headings == list(enumerate(pixels))  # from 0, in the layer's order
    assert main(["hotmax", str(ds.path), "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(it["index"], it["pixel"]) for it in items] == headings
