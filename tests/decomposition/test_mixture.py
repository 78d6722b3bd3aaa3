"""The numpy Gaussian mixture and principal axes against scikit-learn's."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SkMixture

from maxrf.decomposition.mixture import GaussianMixture, principal_axes


def _blobs(seed: int, d: int = 5, n_per: int = 700, k: int = 4):
    rng = np.random.default_rng(seed)
    x, y = [], []
    for j in range(k):
        a = rng.normal(0, 1, (d, d))
        x.append(rng.normal(0, 6, d) + rng.normal(0, 1, (n_per, d)) @ (0.3 * a + np.eye(d)))
        y.append(np.full(n_per, j))
    return np.concatenate(x), np.concatenate(y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixture_matches_scikit_learn(seed):
    x, truth = _blobs(seed)
    ours = GaussianMixture(4, reg_covar=1e-3, seed=seed).fit(x)
    ref = SkMixture(4, covariance_type="full", reg_covar=1e-3, random_state=seed).fit(x)
    assert ours.converged_
    # the same optimum: log-likelihood, BIC, and the partition
    assert ours.score(x) == pytest.approx(ref.score(x), abs=1e-3)
    assert ours.bic(x) == pytest.approx(ref.bic(x), rel=1e-4)
    assert adjusted_rand_score(ref.predict(x), ours.predict(x)) > 0.99
    assert adjusted_rand_score(truth, ours.predict(x)) > 0.95
    order = np.argsort(ours.means_[:, 0])
    ref_order = np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(ours.means_[order], ref.means_[ref_order], atol=0.05)
    np.testing.assert_allclose(ours.covariances_[order], ref.covariances_[ref_order], atol=0.1)
    np.testing.assert_allclose(ours.weights_[order], ref.weights_[ref_order], atol=0.01)


def test_bic_picks_the_number_of_blobs_as_scikit_learn():
    x, _ = _blobs(5, d=3, k=3)
    ours = [GaussianMixture(n, reg_covar=1e-3).fit(x).bic(x) for n in range(1, 7)]
    ref = [SkMixture(n, reg_covar=1e-3, random_state=0).fit(x).bic(x) for n in range(1, 7)]
    assert int(np.argmin(ours)) == int(np.argmin(ref)) == 2


def test_principal_axes_equal_pca_up_to_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 6)) @ rng.normal(0, 1, (6, 6))
    ours = principal_axes(x, 2)
    ref = PCA(2).fit_transform(x)
    for j in range(2):
        s = np.sign(ours[:, j] @ ref[:, j])
        np.testing.assert_allclose(ours[:, j], s * ref[:, j], atol=1e-8)
