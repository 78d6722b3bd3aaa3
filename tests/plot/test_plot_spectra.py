"""Spectrum plots render headless (Agg) to files and return their figure and axes."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maxrf.convert import convert  # noqa: E402
from maxrf.errors import ParameterError  # noqa: E402
from maxrf.hotmax import HotmaxAtlas  # noqa: E402
from maxrf.plot.spectra import plot_calibration, plot_spectra, plot_spectrum  # noqa: E402
from maxrf.store import DataStack  # noqa: E402
from maxrf.synth import make_scan  # noqa: E402

PEAKS = [
    {"name": "Fe Ka", "channel": 0.0, "keV": 6.40, "residual_eV": -3.1},
    {"name": "Rh Ka", "channel": 0.0, "keV": 20.21, "residual_eV": 4.2},
]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plots")
    truth = make_scan(folder / "scan", height=28, width=32, channels=1024, seed=3)
    ds = convert(folder / "scan.rpl", folder / "scan.datastack", calibrate=False)
    peaks = [dict(p, channel=float(truth.channel(p["keV"]))) for p in PEAKS]
    ds.write_layer(
        "calibration",
        {"energies": truth.energies},
        {"gain_keV": truth.gain_keV, "offset_keV": truth.offset_keV, "method": "manual", "peaks": peaks},
    )
    return HotmaxAtlas(ds)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _saved(fig, path) -> None:
    fig.savefig(path)
    assert path.stat().st_size > 1000


def test_plot_spectrum(atlas, tmp_path):
    n = int(atlas.peak_spectrum[-1])
    fig, ax = plot_spectrum(atlas, n)
    r, c = atlas.spectrum_pixels[n]
    assert f"[{r}, {c}]" in ax.get_title()
    assert ax.get_yscale() == "log"
    assert {"spectrum", "baseline", "sub-peaks"} <= {t.get_text() for t in ax.get_legend().get_texts()}
    _saved(fig, tmp_path / "spectrum.png")
    fig2, ax2 = plt.subplots()
    fig3, ax3 = plot_spectrum(atlas, -1, ax=ax2, yscale="linear")
    assert (fig3, ax3) == (fig2, ax2) and ax2.get_yscale() == "linear"
    _saved(fig2, tmp_path / "spectrum.svg")
    with pytest.raises(ParameterError):
        plot_spectrum(atlas, len(atlas))
    with pytest.raises(ParameterError, match="yscale"):
        plot_spectrum(atlas, 0, yscale="sqrt")


def test_plot_spectra(atlas, tmp_path):
    fig, axs = plot_spectra(atlas)
    assert len(axs) == len(atlas)
    for i, ax in enumerate(axs):
        r, c = atlas.spectrum_pixels[i]
        assert any(t.get_text() == f"{i}  [{r}, {c}]" for t in ax.texts)
    _saved(fig, tmp_path / "spectra.png")
    _saved(fig, tmp_path / "spectra.svg")


def test_atlas_methods_delegate(atlas, tmp_path):
    fig, ax = atlas.plot_spectrum(0)
    _saved(fig, tmp_path / "a.png")
    fig, axs = atlas.plot_spectra()
    assert len(axs) == len(atlas)
    _saved(fig, tmp_path / "b.png")


def test_plot_spectra_of_an_empty_atlas(tmp_path):
    from conftest import write_pair

    rpl = write_pair(tmp_path, np.zeros((4, 5, 64), np.uint16))
    ds = convert(rpl, tmp_path / "zero.datastack", calibrate=False)
    ds.write_layer("calibration", {"energies": 0.1 * np.arange(64)},
                   {"gain_keV": 0.1, "offset_keV": 0.0, "method": "manual", "peaks": []})
    empty = HotmaxAtlas(ds)
    assert len(empty) == 0
    fig, axs = plot_spectra(empty)
    assert len(axs) == 1
    _saved(fig, tmp_path / "empty.png")


def test_plot_calibration_of_a_datastack(atlas, tmp_path):
    ds = atlas.datastack
    fig, ax = plot_calibration(ds)
    assert ax.get_xlabel() == "energy (keV)" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.texts]
    assert any(t.startswith("Fe Ka") and "eV" in t for t in labels)
    assert len(ax.get_lines()) >= 2 + len(PEAKS)  # max, sum spectra, markers, lines
    _saved(fig, tmp_path / "cal.png")
    # a path, and a calibration passed as a dict overriding the stored one
    fig, ax = plot_calibration(str(ds.path), {"gain_keV": 0.02, "offset_keV": 0.0, "peaks": []})
    assert "0.020000" in ax.get_title()
    _saved(fig, tmp_path / "cal.svg")


def test_plot_calibration_with_a_calibration_object(atlas, tmp_path):
    from maxrf import calibration
    ds = atlas.datastack
    cal = ds.calibration
    peak = calibration.CalibrationPeak(name="Fe Ka", channel=float(PEAKS[0]["channel"]), keV=6.40,
                                       residual_eV=1.5)
    obj = calibration.Calibration(gain_keV=cal["gain_keV"], offset_keV=cal["offset_keV"],
                                  peaks=[peak], method="auto")
    fig, ax = plot_calibration(ds, obj)
    assert "(auto)" in ax.get_title()
    assert any(t.get_text() == "Fe Ka (+2 eV)" for t in ax.texts)
    _saved(fig, tmp_path / "obj.png")


def test_plot_calibration_of_a_single_spectrum(atlas, tmp_path):
    y = np.asarray(atlas.datastack.sum_spectrum)
    fig, ax = plot_calibration(y)  # no calibration: channel axis
    assert ax.get_xlabel() == "channel" and "uncalibrated" in ax.get_title()
    _saved(fig, tmp_path / "raw.png")
    spectrum = SimpleNamespace(counts=y, header_calibration=(0.04, -0.5), title="point 1")
    fig, ax = plot_calibration(spectrum)
    assert ax.get_xlabel() == "energy (keV)" and ax.get_title().startswith("point 1")
    _saved(fig, tmp_path / "point.png")
    with pytest.raises(ParameterError):
        plot_calibration(np.zeros((3, 4)))


def test_datastack_without_calibration_plots_channels(tmp_path):
    make_scan(tmp_path / "scan", height=8, width=8, channels=256, seed=2, n_speckles=0)
    ds = convert(tmp_path / "scan.rpl", tmp_path / "scan.datastack", calibrate=False)
    fig, ax = plot_calibration(DataStack(ds.path))
    assert ax.get_xlabel() == "channel"
    _saved(fig, tmp_path / "nocal.png")
