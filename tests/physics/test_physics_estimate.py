"""The one FWHM estimator and the one scattering-angle estimator (maxrf.physics.estimate),
against synthetic spectra whose truth is set with independent maths (no xraydb, no maxrf
templates): Gaussians of the Fano-law width, a Klein-Nishina Compton shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maxrf import physics

GAIN, OFFSET = 0.01, -0.05
E = OFFSET + GAIN * np.arange(4096)
# silicon: Fano factor 0.114, 3.85 eV per pair -> FWHM**2 = noise**2 + 2.3548**2 F eps E
SLOPE = (2 * math.sqrt(2 * math.log(2))) ** 2 * 0.114 * 3.85e-3


def fano_fwhm(keV: float, f6: float) -> float:
    return math.sqrt(f6**2 + SLOPE * (keV - 5.9))


def gauss_counts(centres, areas, fwhms) -> np.ndarray:
    """Expected counts per channel of Gaussian peaks (channel-integrated by erf)."""
    edges = np.concatenate([E - GAIN / 2, [E[-1] + GAIN / 2]])
    out = np.zeros(E.size)
    for c, a, w in zip(centres, areas, fwhms):
        s = w / (2 * math.sqrt(2 * math.log(2)))
        cdf = 0.5 * (1 + np.vectorize(math.erf)((edges - c) / (s * math.sqrt(2))))
        out += a * np.diff(cdf)
    return out


# K-alpha energies (keV) of Ca, Ti, Fe, Cu, Zn, Sr and Pb L-alpha / L-beta
LINES = (3.69, 4.51, 6.40, 8.05, 8.64, 14.17, 10.55, 12.61)


@pytest.mark.parametrize("f6", [0.125, 0.145, 0.18, 0.23])
@pytest.mark.parametrize("area", [3e3, 1e5])
def test_estimate_fwhm_recovers_the_fano_width(f6, area):
    rng = np.random.default_rng(int(f6 * 1000 + area))
    rel = np.array([0.5, 0.4, 1.0, 0.8, 0.6, 0.3, 0.7, 0.5])
    y = gauss_counts(LINES, area * rel, [fano_fwhm(c, f6) for c in LINES])
    y += 20.0 * np.exp(-E / 8.0) * (E > 0.5)  # smooth background
    got = physics.estimate_fwhm(E, rng.poisson(y).astype(float), anode="Rh", tube_kv=40.0)
    assert got is not None
    assert got == pytest.approx(f6, rel=0.04)


def test_estimate_fwhm_without_peaks_says_none():
    rng = np.random.default_rng(0)
    y = rng.poisson(np.full(E.size, 5.0)).astype(float)
    assert physics.estimate_fwhm(E, y) is None


def klein_nishina_compton(keV: float, theta_deg: float) -> float:
    return keV / (1 + keV / 510.99895 * (1 - math.cos(math.radians(theta_deg))))


@pytest.mark.parametrize("theta", [70.0, 95.0, 120.0, 145.0])
def test_estimate_scatter_angle_from_a_compton_peak(theta):
    rng = np.random.default_rng(int(theta))
    f6 = 0.15
    ka = [(20.216, 2.0), (20.074, 1.0)]  # Rh K-alpha1, K-alpha2 (keV, relative)
    cent = [k for k, _ in ka]
    ray = gauss_counts(cent, [2e4 * r for _, r in ka], [fano_fwhm(k, f6) for k in cent])
    # Compton: shifted lines, Doppler-broadened (0.0105 E sqrt(2 (1 - cos theta)) extra FWHM)
    dop = 0.0105 * math.sqrt(2 * (1 - math.cos(math.radians(theta))))
    cc = [klein_nishina_compton(k, theta) for k in cent]
    comp = gauss_counts(cc, [6e4 * r for _, r in ka],
                        [math.hypot(fano_fwhm(c, f6), dop * k) for c, k in zip(cc, cent)])
    y = rng.poisson(ray + comp + 30.0).astype(float)
    got = physics.estimate_scatter_angle(E, y, anode="Rh", tube_kv=40.0, fwhm_at_6keV=f6)
    assert got is not None and abs(got - theta) <= 1.0


def test_estimate_scatter_angle_needs_a_compton_peak():
    rng = np.random.default_rng(1)
    y = rng.poisson(np.full(E.size, 30.0)).astype(float)
    assert physics.estimate_scatter_angle(E, y) is None


def test_constants_are_the_fano_law():
    assert physics.FANO_SLOPE == pytest.approx(SLOPE, rel=1e-12)
    assert physics.MIN_FWHM_KEV == pytest.approx(math.sqrt(SLOPE * 5.9), rel=1e-12)
    assert physics.fwhm_keV(5.9, physics.DEFAULT_FWHM_KEV) == pytest.approx(0.145)
    with pytest.raises(Exception, match="Fano limit"):
        physics.fwhm_keV(5.9, 0.99 * physics.MIN_FWHM_KEV)
