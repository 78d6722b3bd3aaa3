"""Rank against Poisson noise, energy bins, class merging: against constructions of known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from maxrf.decomposition import energy_bins, estimate_rank
from maxrf.decomposition.classes import CLASS_SEPARATION, merge_overlapping
from maxrf.decomposition.nmf import agreement
from maxrf.errors import ParameterError


@pytest.mark.parametrize("rank, counts", [(1, 50.0), (3, 200.0), (5, 1000.0), (4, 20.0)])
def test_rank_of_poisson_low_rank_data(rank, counts):
    rng = np.random.default_rng(rank)
    n, m = 2500, 150
    w = rng.gamma(0.7, 1.0, size=(n, rank))          # sparse-ish, non-negative abundances
    h = np.zeros((rank, m))
    for i in range(rank):                              # distinct peaks on a common floor
        h[i] = 0.05 + np.exp(-0.5 * ((np.arange(m) - rng.uniform(10, 140)) / 3.0) ** 2)
    mean = w @ h
    mean *= counts / mean.mean()
    x = rng.poisson(mean).astype(float)
    assert estimate_rank(x, seed=1)["rank"] == rank


def test_rank_of_pure_noise_is_one():
    x = np.random.default_rng(0).poisson(30.0, size=(1000, 80)).astype(float)
    out = estimate_rank(x)
    assert out["rank"] == 1
    # Marchenko-Pastur: unit-variance noise tops out near sqrt(n) + sqrt(m)
    assert out["noise_edge"] == pytest.approx(math.sqrt(1000) + math.sqrt(80), rel=0.15)


def test_rank_rejects_tiny_input():
    with pytest.raises(ParameterError):
        estimate_rank(np.ones((1, 10)))


def test_energy_bins_half_the_resolution():
    e = -0.2 + 0.01 * np.arange(2048)
    y = np.ones_like(e)
    edges = energy_bins(e, y, tube_kv=18.0, fwhm_at_6keV=0.15)
    assert e[edges[0]] >= 0.9 - 0.01 and e[edges[-1] - 1] <= 18.0
    widths = np.diff(edges) * 0.01
    centres = e[edges[:-1]]
    # Fano law by hand: FWHM^2 = noise^2 + 2.3548^2 F eps E, noise set by 0.15 keV at 5.9 keV
    k = 2.3548**2 * 0.114 * 3.85e-3
    fwhm = np.sqrt(0.15**2 - k * 5.9 + k * centres)
    np.testing.assert_allclose(widths[:-1], fwhm[:-1] / 2, atol=0.011)


def test_energy_bins_errors():
    e = np.linspace(0, 20, 100)
    with pytest.raises(ParameterError):
        energy_bins(e, np.ones(50))
    with pytest.raises(ParameterError):
        energy_bins(e[::-1], np.ones(100))


def test_overlapping_mixture_components_merge():
    rng = np.random.default_rng(3)
    skewed = np.c_[rng.gamma(1.5, 1.0, 3000), rng.normal(0, 1, 3000)]    # one skewed cluster
    far = np.c_[rng.normal(25, 1, 1500), rng.normal(20, 1, 1500)]          # a distinct one
    x = np.r_[skewed, far]
    gm = GaussianMixture(4, random_state=0).fit(x)
    mapping = merge_overlapping(gm, CLASS_SEPARATION)
    labels = mapping[gm.predict(x)]
    assert mapping.max() + 1 == 2
    assert len(set(labels[:3000])) == 1 and len(set(labels[3000:])) == 1
    assert labels[0] != labels[-1]


def test_agreement_of_component_sets():
    a = np.eye(3) + 0.01
    assert agreement(a, a[::-1]) == pytest.approx(1.0)
    b = a.copy()
    b[2] = [1.0, 1.0, 0.0]
    assert agreement(a, b) < 0.9
