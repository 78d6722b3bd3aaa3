"""prominent_peaks (numpy) against scipy.signal.find_peaks with a prominence."""

import numpy as np
import pytest
from scipy import signal

from maxrf.errors import ParameterError
from maxrf.peaks.finding import prominent_peaks


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rel", [0.0, 0.01, 0.1])
def test_equals_scipy_find_peaks(seed, rel):
    rng = np.random.default_rng(seed)
    x = np.arange(800.0)
    y = sum(a * np.exp(-0.5 * ((x - c) / w) ** 2)
            for a, c, w in zip(rng.uniform(1, 100, 12), rng.uniform(0, 800, 12), rng.uniform(2, 9, 12)))
    y = y + rng.poisson(2.0, x.size) * (seed % 2)  # noisy on odd seeds
    if seed % 3 == 0:
        y = np.round(y / 5) * 5  # flat tops (plateaus), some at the ends
    p = rel * y.max()
    expected, _ = signal.find_peaks(y, prominence=p)
    np.testing.assert_array_equal(prominent_peaks(y, p), expected)


def test_edges_plateaus_and_errors():
    y = np.array([5, 1, 3, 3, 3, 3, 0, 2, 2, 7, 7])
    assert prominent_peaks(y, 0.0).tolist() == signal.find_peaks(y, prominence=0.0)[0].tolist() == [3]
    assert prominent_peaks(np.ones(10), 0.0).size == 0
    assert prominent_peaks(np.array([0.0, 1.0]), 0.0).size == 0
    with pytest.raises(ParameterError):
        prominent_peaks(np.ones((3, 3)), 1.0)
