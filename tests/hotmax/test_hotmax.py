"""The hotmax atlas on synthetic scans with ground truth, its storage and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from maxrf import store
from maxrf.convert import convert
from maxrf.errors import CorruptDataError, LayerMissingError, ParameterError
from maxrf.hotmax import LAYER, HotmaxAtlas, build_hotmax, group_pixels, spectrum_noise
from maxrf.store import DataStack
from maxrf.synth import expected_spectra, make_scan, synth_spectrum

# seed -> (height, width, channels): a few shapes, one with the default 2048 channels
SCANS = {0: (32, 40, 1024), 1: (36, 30, 1024), 2: (24, 48, 2048)}


def calibrate_with_truth(ds: DataStack, truth) -> None:
    ds.write_layer(
        "calibration",
        {"energies": truth.energies},
        {"gain_keV": truth.gain_keV, "offset_keV": truth.offset_keV, "method": "manual", "peaks": []},
    )


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """seed -> (datastack path, truth, atlas built once and stored)."""
    out = {}
    for seed, (h, w, c) in SCANS.items():
        folder = tmp_path_factory.mktemp(f"hotmax{seed}")
        truth = make_scan(folder / "scan", height=h, width=w, channels=c, seed=seed)
        ds = convert(folder / "scan.rpl", folder / "scan.datastack", calibrate=False)
        calibrate_with_truth(ds, truth)
        out[seed] = (ds.path, truth, HotmaxAtlas(ds))
    return out


@pytest.fixture(params=sorted(SCANS))
def scan(request, scans):
    return scans[request.param]


# ------------------------------------------------------------------------ the atlas
def test_hotmax_pixels_are_the_true_argmax_pixels(scan):
    path, truth, atlas = scan
    cube = np.asarray(DataStack(path).cube.compute())
    h, w, c = cube.shape
    assert len(atlas.hotmax_pixels) >= 5
    channels = atlas.hotmax_pixels[:, 2]
    assert np.all(np.diff(channels) > 0)  # one row per peak, sorted by channel
    flat = np.argmax(cube.reshape(h * w, c)[:, channels], axis=0)
    reference = np.column_stack(np.unravel_index(flat, (h, w)))
    np.testing.assert_array_equal(atlas.hotmax_pixels[:, :2], reference)
    # each spectrum is the cube's spectrum of its pixel
    r, col = atlas.spectrum_pixels.T
    np.testing.assert_array_equal(atlas.hotmax_spectra, cube[r, col].astype(float))


def test_peaks_are_grouped_by_pixel_and_sorted_by_energy(scan):
    _, _, atlas = scan
    n = len(atlas)
    assert atlas.hotmax_spectra.shape == (n, atlas.x_keVs.size)
    assert len({tuple(p) for p in atlas.spectrum_pixels}) == n  # one spectrum per pixel
    np.testing.assert_array_equal(
        atlas.spectrum_pixels[atlas.peak_spectrum], atlas.hotmax_pixels[:, :2]
    )
    lowest = [atlas.hotmax_pixels[atlas.peak_spectrum == k, 2].min() for k in range(n)]
    assert np.all(np.diff(lowest) > 0)
    assert sorted(np.concatenate([atlas.spectrum_peaks(k) for k in range(n)])) == list(
        range(len(atlas.hotmax_pixels))
    )
    assert [len(v) for v in atlas.peak_keV] == np.bincount(atlas.peak_spectrum).tolist()


def test_group_pixels_rule():
    pixels = np.array([[5, 5, 40], [1, 2, 10], [5, 5, 20], [3, 3, 30], [1, 2, 50]])
    peak_spectrum, spectrum_pixels = group_pixels(pixels)
    # groups numbered by their lowest channel: [1,2] (10), [5,5] (20), [3,3] (30)
    np.testing.assert_array_equal(spectrum_pixels, [[1, 2], [5, 5], [3, 3]])
    np.testing.assert_array_equal(peak_spectrum, [1, 0, 1, 2, 0])


def test_single_pixel_particle_is_one_spectrum_with_both_elements(scan):
    from maxrf.physics import line_energy

    _, truth, atlas = scan
    pixel = list(truth.particle_pixel)
    hits = [k for k in range(len(atlas)) if atlas.spectrum_pixels[k].tolist() == pixel]
    assert len(hits) == 1
    n = hits[0]
    tol = 0.12  # keV: about one detector FWHM at 8 keV
    for el in truth.particle_elements:
        ka = line_energy(el, "Ka")
        near = np.abs(atlas.peak_keVs - ka) < tol
        assert near.any(), f"{el} Ka not among the max-spectrum peaks"
        assert np.all(atlas.peak_spectrum[near] == n), f"{el} Ka peak not in the particle spectrum"
        assert np.min(np.abs(np.array(atlas.subpeak_keV[n]) - ka)) < tol
        assert n in atlas.finder(el)
    assert n not in atlas.finder("Hg")  # Hg La 9.99 keV: no such peak


def test_finder_on_element_maxima(scan):
    """The hotmax spectrum of an element's strongest Ka peak is found by the finder."""
    _, truth, atlas = scan
    for el in truth.elements:
        from maxrf.physics import line_energy

        ka = line_energy(el, "Ka")
        near = np.flatnonzero(np.abs(atlas.peak_keVs - ka) < 0.06)
        for k in near:
            assert atlas.peak_spectrum[k] in atlas.finder(el), el


def _pure_noise_fractions(atlas, truth, n_sigma: float) -> tuple[float, float]:
    """Observed and expected fraction of pure-continuum channels above the envelope."""
    lam_all = expected_spectra(truth)
    observed, expected = [], []
    for n, (r, c) in enumerate(atlas.spectrum_pixels):
        lam = lam_all[r, c]
        continuum = synth_spectrum(
            {}, truth.energies, anode=truth.anode, tube_kv=truth.tube_kv,
            theta_deg=truth.theta_deg, fwhm_at_6keV=truth.fwhm_at_6keV,
            scatter={"continuum": float(truth.scatter_maps["continuum"][r, c])}, poisson=False,
        )
        # channels where everything but the smooth continuum is negligible
        quiet = ((lam - continuum) < 0.05 * np.sqrt(np.maximum(continuum, 1.0))) & (continuum > 0.2)
        y = atlas.hotmax_spectra[n]
        _, env, _ = spectrum_noise(y, fwhm_channels=atlas.fwhm_channels, n_sigma=n_sigma)
        observed.append(np.mean(y[quiet] > env[quiet]))
        ideal = lam + n_sigma * np.sqrt(np.maximum(lam, 1.0))
        expected.append(np.mean(stats.poisson.sf(np.floor(ideal[quiet]), lam[quiet])))
    return float(np.mean(observed)), float(np.mean(expected))


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_envelope_holds_the_expected_fraction_of_noise(scans, seed):
    _, truth, atlas = scans[seed]
    for n_sigma, tol in ((1.0, 0.04), (2.0, 0.02)):
        observed, expected = _pure_noise_fractions(atlas, truth, n_sigma)
        assert abs(observed - expected) < tol, (n_sigma, observed, expected)
    observed, expected = _pure_noise_fractions(atlas, truth, 3.0)
    assert observed < 0.012, (observed, expected)


@pytest.mark.parametrize("level", [0.7, 8.0, 60.0])
def test_noise_envelope_on_a_pure_poisson_continuum(level):
    """A smooth continuum of known mean: the envelope is Poisson's, at low and high counts."""
    x = np.linspace(0.0, 1.0, 2048)
    lam = level * (0.4 + 1.2 * np.exp(-((x - 0.45) / 0.3) ** 2))
    rng = np.random.default_rng(int(level * 10))
    for n_sigma in (1.0, 3.0):
        obs, exp = [], []
        for _ in range(4):
            y = rng.poisson(lam).astype(float)
            base, env, sub = spectrum_noise(y, fwhm_channels=4.0, n_sigma=n_sigma)
            obs.append(np.mean(y > env))
            ideal = lam + n_sigma * np.sqrt(np.maximum(lam, 1.0))
            exp.append(np.mean(stats.poisson.sf(np.floor(ideal), lam)))
            if n_sigma == 3.0:
                assert len(sub) <= 2  # no peaks in pure noise
                assert abs(np.median(base / lam) - 1.0) < 0.12
        assert abs(np.mean(obs) - np.mean(exp)) < (0.03 if n_sigma == 1.0 else 0.004), (n_sigma, obs, exp)


# ---------------------------------------------------------------------- storage
def test_stored_layer_follows_the_schema(scans):
    path, _, atlas = scans[0]
    layer = DataStack(path).read(LAYER)
    n_peaks, n = len(atlas.hotmax_pixels), len(atlas)
    c = atlas.x_keVs.size
    assert layer["pixels"].shape == (n_peaks, 3)
    assert layer["peak_spectrum"].shape == (n_peaks,)
    assert layer["spectra"].shape == (n, c)
    assert layer["spectrum_pixels"].shape == (n, 2)
    assert layer["baselines"].shape == layer["envelopes"].shape == (n, c)
    assert len(layer.attrs["peak_keV"]) == len(layer.attrs["subpeak_keV"]) == n
    assert "prominence" in layer.attrs
    assert np.all(layer["envelopes"] >= layer["baselines"])


def _forbid_cube(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the cube was touched")

    monkeypatch.setattr(DataStack, "cube", property(boom))
    monkeypatch.setattr(DataStack, "argmax_pixels", property(boom))
    monkeypatch.setattr(DataStack, "max_spectrum", property(boom))
    monkeypatch.setattr(store.cube._CubeReader, "__getitem__", boom)
    monkeypatch.setattr(store.CubeSource, "read_block", boom)


def test_stored_atlas_reads_back_without_touching_the_cube(scans, monkeypatch):
    path, _, atlas = scans[1]
    _forbid_cube(monkeypatch)
    again = HotmaxAtlas(path)  # a path works too
    for name in ("hotmax_pixels", "peak_spectrum", "hotmax_spectra", "spectrum_pixels",
                 "baselines", "envelopes", "x_keVs"):
        np.testing.assert_array_equal(getattr(again, name), getattr(atlas, name))
    assert [s.tolist() for s in again.subpeaks] == [s.tolist() for s in atlas.subpeaks]
    assert again.summary() == atlas.summary()
    np.testing.assert_array_equal(again.peak_spectra[0], atlas.hotmax_spectra[atlas.peak_spectrum[0]])
    assert again.peak_spectra.shape == (len(atlas.hotmax_pixels), atlas.x_keVs.size)
    assert again.finder("Cu").tolist() == atlas.finder("Cu").tolist()
    # the same prominence as stored does not rebuild either
    HotmaxAtlas(path, prominence=again.prominence)


def test_recompute_with_another_prominence_replaces_the_layer(tmp_path):
    truth = make_scan(tmp_path / "scan", height=28, width=32, channels=1024, seed=5)
    ds = convert(tmp_path / "scan.rpl", tmp_path / "scan.datastack", calibrate=False)
    calibrate_with_truth(ds, truth)
    default = build_hotmax(ds)
    assert default.prominence is None
    high = float(np.sort(DataStack(ds.path).max_spectrum)[-1]) / 3.0
    strict = HotmaxAtlas(ds.path, prominence=high)  # differs from the stored one: rebuilt
    assert strict.prominence == high
    assert 1 <= len(strict.hotmax_pixels) < len(default.hotmax_pixels)
    assert DataStack(ds.path).read(LAYER).attrs["prominence"] == high
    assert len(HotmaxAtlas(ds.path).hotmax_pixels) == len(strict.hotmax_pixels)
    assert len(HotmaxAtlas(ds.path, recompute=True).hotmax_pixels) == len(default.hotmax_pixels)
    narrow = HotmaxAtlas(ds.path, n_sigma=1.0)  # another envelope: rebuilt
    assert narrow.n_sigma == 1.0 and np.all(narrow.envelopes <= default.envelopes + 1e-9)
    assert DataStack(ds.path).read(LAYER).attrs["n_sigma"] == 1.0
    layers = list((ds.path / "layers").iterdir())
    assert len([p for p in layers if p.name.startswith("hotmax.")]) == 1  # no growth


def test_errors(tmp_path, scans):
    path, _, atlas = scans[0]
    with pytest.raises(ParameterError, match="prominence"):
        HotmaxAtlas(path, prominence=-1)
    with pytest.raises(ParameterError, match="no hotmax spectrum"):
        atlas.spectrum_peaks(len(atlas))
    with pytest.raises(ParameterError):
        atlas.finder("Xx")
    make_scan(tmp_path / "raw", height=8, width=8, channels=256, seed=1, n_speckles=0)
    ds = convert(tmp_path / "raw.rpl", tmp_path / "raw.datastack", calibrate=False)
    with pytest.raises(LayerMissingError, match="calibration"):
        HotmaxAtlas(ds)
    ds.write_layer("calibration", {"energies": 0.1 * np.arange(256)},
                   {"gain_keV": 0.1, "offset_keV": 0.0, "method": "manual", "peaks": []})
    ds.write_layer(LAYER, {"pixels": np.array([[0, 0, 999]]), "peak_spectrum": np.array([0]),
                           "spectra": np.zeros((1, 256)), "spectrum_pixels": np.zeros((1, 2), int),
                           "baselines": np.zeros((1, 256)), "envelopes": np.zeros((1, 256))},
                   {"peak_keV": [[99.9]], "subpeak_keV": [[]], "subpeak_channels": [[]], "prominence": None})
    with pytest.raises(CorruptDataError, match="recompute"):
        HotmaxAtlas(ds)
    assert len(HotmaxAtlas(ds, recompute=True).hotmax_pixels) >= 1


def test_hotmax_module_does_not_import_matplotlib():
    code = "import sys, maxrf.hotmax; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -------------------------------------------------------------------------- CLI
def test_cli_json(scans, capsys):
    from maxrf.cli import main

    path, truth, atlas = scans[0]
    assert main(["hotmax", str(path), "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert isinstance(items, list) and len(items) == len(atlas)
    for item in items:
        assert {"pixel", "peak_keV", "subpeak_keV"} <= set(item)
        assert len(item["pixel"]) == 2 and item["peak_keV"]
        assert all(isinstance(v, float) for v in item["peak_keV"] + item["subpeak_keV"])
    assert list(truth.particle_pixel) in [item["pixel"] for item in items]


def test_cli_text_plot_and_errors(scans, tmp_path, capsys):
    from maxrf.cli import main

    path, _, atlas = scans[2]
    out = tmp_path / "atlas.svg"
    assert main(["hotmax", str(path), "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"in {len(atlas)} hotmax spectra" in text and "pixel [" in text
    assert out.stat().st_size > 1000
    assert main(["hotmax", str(path), "--plot", str(tmp_path / "atlas.xyz")]) == 1
    assert "--plot" in capsys.readouterr().err
    assert main(["hotmax", str(path), "--prominence", "0"]) == 1
    assert "--prominence" in capsys.readouterr().err
    assert main(["hotmax", str(tmp_path / "missing.datastack")]) == 1
