"""The seed's max spectrum: the maximum over pixels of the spectrally smoothed cube.

maxrf4u smooths every pixel's spectrum (a Gaussian of :data:`SEED_SIGMA` channels) when it
builds its datastack, so its max spectrum has one maximum per real peak and the seed's
``get_slices(ds.energies(), ds.max_spectrum())`` (prominence 0.5 counts) finds the ~20
peaks of the scan. maxrf keeps the raw counts, whose max spectrum is a maximum of noise
too: sliced the same way it gives hundreds of "peaks". :class:`SmoothedMax` computes the
seed's spectrum in convert's one pass (from the blocks it reads anyway); the seed-style
call ``ds.max_spectrum()`` returns it, while ``ds.max_spectrum`` (no call) stays the raw
maximum, so the exact raw semantics stay reachable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maxrf.engine import Block, Reduction

SEED_SIGMA = 7.0
"""Gaussian smoothing (channels) of maxrf4u's datastack, and of the smoothed max spectrum."""


class SmoothedMax(Reduction):
    """Per channel, the maximum over all pixels of the Gaussian-smoothed spectra (counts).

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian along the channels (channels).
    """

    def __init__(self, sigma: float = SEED_SIGMA):
        self.sigma = float(sigma)

    def block(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n = data.shape
        return smooth_spectra(data.reshape(r * c, n), self.sigma).max(axis=0)

    def start(self, shape: tuple[int, int]) -> Any:
        return None

    def add(self, acc: Any, where: Block, part: np.ndarray) -> np.ndarray:
        return part.copy() if acc is None else np.maximum(acc, part, out=acc)

    def finish(self, acc: Any, shape: tuple[int, int]) -> np.ndarray:
        return np.asarray(acc, dtype=np.float64)

    def combine(self, parts: list[tuple[Block, Any]], shape: tuple[int, int]) -> np.ndarray:
        acc = None
        for where, part in parts:
            acc = self.add(acc, where, part)
        return self.finish(acc, shape)


def smooth_spectra(spectra: np.ndarray, sigma: float = SEED_SIGMA) -> np.ndarray:
    """Gaussian smoothing of ``(n, C)`` spectra along the channels, float32.

    The same numbers as ``scipy.ndimage.gaussian_filter1d(x, sigma, mode='mirror')``
    (kernel truncated at 4 sigma; agreement to float32 rounding), computed by FFT, which is
    3-4x faster for the whole-cube pass of convert.
    """
    import scipy.fft as sfft

    x = np.asarray(spectra, dtype=np.float32)
    n = x.shape[-1]
    radius = min(int(4.0 * sigma + 0.5), n - 1)
    if radius < 1:
        return x.copy()
    padded = np.concatenate([x[:, radius:0:-1], x, x[:, -2:-radius - 2:-1]], axis=1)
    m = padded.shape[1]
    nf = sfft.next_fast_len(m, real=True)
    k = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (k / sigma) ** 2)
    kernel = np.zeros(nf, dtype=np.float64)
    kernel[: radius + 1] = g[radius:] / g.sum()
    kernel[-radius:] = g[:radius] / g.sum()
    spec = sfft.rfft(padded, n=nf, axis=1)
    spec *= sfft.rfft(kernel).astype(np.complex64)
    return sfft.irfft(spec, n=nf, axis=1)[:, radius:radius + n]
