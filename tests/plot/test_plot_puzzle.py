"""Tests of maxrf.plot.puzzle: the puzzle renders for every hotmax spectrum of a demo-like
synthetic scan (Agg backend, written to files), patterns come from the line tables."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maxrf import physics  # noqa: E402
from maxrf.errors import ParameterError  # noqa: E402
from maxrf.identify import element_pattern  # noqa: E402
from maxrf.plot.puzzle import plot_patterns, plot_ptrn, plot_puzzle  # noqa: E402

#: the demo scan's design (maxrf.demo.DEMO_SCAN), smaller
DEMO_LIKE = {
    "height": 48, "width": 64, "channels": 2048, "seed": 2026,
    "elements": ["Ca", "Fe", "Cu", "Zn", "Pb", "Ti", "K", "Mn"],
    "n_speckles": 6, "speckle_element": "Fe", "particle": True,
    "particle_elements": ("Cu", "Zn"), "counts_per_pixel": 3000, "header_calibration": True,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from maxrf.convert import convert
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.identify import identify
    from maxrf.synth import make_scan

    tmp = tmp_path_factory.mktemp("puzzle")
    make_scan(tmp / "demo.rpl", **DEMO_LIKE)
    ds = convert(tmp / "demo.rpl", tmp / "demo.datastack")
    atlas_plain = HotmaxAtlas(ds)  # before identification: no labels stored yet
    ident = identify(ds)
    return tmp, HotmaxAtlas(ds), ident, atlas_plain


def test_ptrn_returns_seed_dict():
    fig, ax = plt.subplots()
    res = plot_ptrn("Cu", -1, ax)
    assert {"elem", "name", "peaks_xy", "color"} <= set(res)
    assert res["elem"] == "Cu" and res["name"] == "Copper"
    np.testing.assert_allclose(res["peaks_xy"], element_pattern("Cu").peaks_xy)
    np.testing.assert_allclose(res["color"], physics.element_color("Cu"))
    sticks = ax.collections[0].get_segments()
    assert len(sticks) == len(res["peaks_xy"])
    for seg, (kev, rel) in zip(sticks, res["peaks_xy"]):
        assert seg[0][0] == pytest.approx(kev) and seg[0][1] == pytest.approx(-1)
        assert seg[1][1] == pytest.approx(-1 + rel)
    assert any(t.get_text() == "Cu" for t in ax.texts)
    plt.close(fig)


def test_ptrn_new_axes_and_errors():
    res = plot_ptrn("Pb")
    assert res["ax"] is not None and len(res["peaks_xy"]) > 3
    plt.close(res["ax"].figure)
    with pytest.raises(ParameterError):
        plot_ptrn("Qq", 0)


def test_patterns(tmp_path):
    ax = plot_patterns(["Pb", "As", "S"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Pb", "As", "S"]
    ax.figure.savefig(tmp_path / "patterns.png")
    assert (tmp_path / "patterns.png").stat().st_size > 1000
    plt.close(ax.figure)
    ax = plot_patterns("Ti Ba")
    assert len(ax.get_yticks()) == 2
    plt.close(ax.figure)
    with pytest.raises(ParameterError):
        plot_patterns([])


def test_puzzle_renders_every_hotmax_spectrum(demo):
    tmp, atlas, ident, _ = demo
    assert len(atlas.hotmax_spectra) >= 3
    for n in range(len(atlas.hotmax_spectra)):
        ax0, ax1 = plot_puzzle(atlas, n)
        assert ax0.figure is ax1.figure
        # peaks labelled with what explains them (stored identification)
        labels = [t.get_text() for t in ax0.texts]
        assert labels
        # the elements present in this spectrum are drawn as patterns
        present = [el for el, r in ident.spectra[n].elements.items() if r.status == "present"]
        texts = {t.get_text() for t in ax1.texts}
        assert set(present) <= texts
        # user guesses go under, as in the seed
        plot_ptrn("Zn", -len(present) - 1, ax1)
        path = tmp / f"puzzle_{n}.png"
        ax0.figure.savefig(path, dpi=60)
        assert path.stat().st_size > 2000
        plt.close(ax0.figure)


def test_puzzle_labels_from_identification(demo):
    _, atlas, ident, _ = demo
    n = next(i for i, s in enumerate(ident.spectra) if "Cu" in s.present())
    ax0, ax1 = plot_puzzle(atlas, n, identification=ident)
    labels = {t.get_text() for t in ax0.texts}
    assert "Cu Ka1" in labels
    assert any(lb.startswith("Rh Ka1 ") for lb in labels)  # Rayleigh or Compton, instrument
    plt.close(ax0.figure)


def test_puzzle_without_identification(demo):
    _, _, _, plain = demo

    class NoStore:  # an atlas whose datastack holds no identification
        x_keVs = plain.x_keVs
        hotmax_spectra = plain.hotmax_spectra
        baselines = plain.baselines
        envelopes = plain.envelopes
        subpeaks = plain.subpeaks

    ax0, ax1 = plot_puzzle(NoStore(), 0, yscale="log")
    assert ax0.texts and all(re.fullmatch(r"-?\d+\.\d\d", t.get_text()) for t in ax0.texts)  # keV
    assert ax0.get_yscale() == "log"
    plt.close(ax0.figure)
    with pytest.raises(ParameterError):
        plot_puzzle(NoStore(), 999)
    with pytest.raises(ParameterError):
        plot_puzzle(NoStore(), 0, yscale="sqrt")
