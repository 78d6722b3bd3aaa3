"""The seed's max spectrum: the maximum over pixels of the spectrally smoothed cube.

maxrf4u smooths every pixel's spectrum (a Gaussian of :data:`SEED_SIGMA` channels) when it
builds its datastack, so its max spectrum has one maximum per real peak and the seed's
``get_slices(ds.energies(), ds.max_spectrum())`` (prominence 0.5 counts) finds the ~20
peaks of the scan. maxrf keeps the raw counts, whose max spectrum is a maximum of noise
too: sliced the same way it gives hundreds of "peaks". :class:`SmoothedMax` computes the
seed's spectrum in one pass over the cube; the seed-style call ``ds.max_spectrum()``
returns it, while ``ds.max_spectrum`` (no call) stays the raw maximum, so the exact raw
semantics stay reachable. Only that call needs it (maxrf's own workflow uses the raw
maximum), so convert computes it only when asked (``--seed-max``, from the blocks it reads
anyway); otherwise :func:`seed_max_spectrum` computes it on the first call, in one pass
over the stored cube, and stores it for the calls after.

Smoothing every pixel's spectrum is the expensive part (an FFT per pixel: several times
the rest of convert's pass). :func:`smoothed_max` gets the same maximum by pruning, in a
compiled walk over the pixels (:func:`maxrf.kernels.smoothed_max`): per pixel, the
channels are summed in bins of :data:`maxrf.kernels.BIN`; the banded sum of those bin
sums, each times the largest kernel weight between the two bins, bounds the pixel's
smoothed value anywhere in a bin from above. Only the bins whose bound exceeds the
maximum found so far there (lowest over the bin's channels) are smoothed exactly; the
others provably cannot raise it, so the result is the maximum of the exactly smoothed
cube. The maximum found so far is shared by the blocks of a pass (:class:`SmoothedMax`):
after the first blocks most (pixel, bin) pairs are pruned. Counts must be >= 0 for the
bound; other data are smoothed whole.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from maxrf.engine import Block, Reduction

SEED_SIGMA = 7.0
"""Gaussian smoothing (channels) of maxrf4u's datastack, and of the smoothed max spectrum."""


class SmoothedMax(Reduction):
    """Per channel, the maximum over all pixels of the Gaussian-smoothed spectra (counts).

    The blocks of one pass share the maximum found so far (a lower bound of the result,
    made only of values that some pixel reaches), so a block only smooths the pixels that
    may beat what the blocks before it found. :meth:`start` clears it; a copy sent to
    another process (a dask worker) starts from zeros, which is still exact, only slower.

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian along the channels (channels).
    """

    def __init__(self, sigma: float = SEED_SIGMA):
        self.sigma = float(sigma)
        self._floor: np.ndarray | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"sigma": self.sigma}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["sigma"])

    def floor(self, channels: int) -> np.ndarray:
        """A copy of the maximum found so far in this pass, ``(channels,)`` float32."""
        with self._lock:
            if self._floor is None or self._floor.size != channels:
                self._floor = np.zeros(channels, dtype=np.float32)
            return self._floor.copy()

    def raise_floor(self, best: np.ndarray) -> None:
        """Share a block's maxima with the blocks after it."""
        with self._lock:
            if self._floor is not None and self._floor.size == best.size:
                np.maximum(self._floor, best, out=self._floor)

    def block(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n = data.shape
        best = smoothed_max(data.reshape(r * c, n), self.sigma, floor=self.floor(n))
        self.raise_floor(best)
        return best

    def start(self, shape: tuple[int, int]) -> Any:
        with self._lock:
            self._floor = None  # a new pass: another cube's values are no bound of this one
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


def gaussian_kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage's Gaussian weights (radius ``int(4 sigma + 0.5)``, sum 1), float64."""
    radius = int(4.0 * sigma + 0.5)
    k = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 / sigma**2 * k.astype(np.float64) ** 2)
    return g / g.sum()


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


def smoothed_max(spectra: np.ndarray, sigma: float = SEED_SIGMA, floor: np.ndarray | None = None,
                 stats: dict | None = None) -> np.ndarray:
    """``smooth_spectra(spectra, sigma).max(axis=0)`` of ``(n, C)`` spectra, float32, by pruning.

    Equal to the maximum over the rows of ``scipy.ndimage.gaussian_filter1d(x, sigma,
    mode='mirror')`` to float32 rounding (see the module docstring for the bound). Spectra
    with negative or non-finite values, or too few channels for the bins, are smoothed
    whole.

    Parameters
    ----------
    spectra : (n, C) array
        Counts of ``n`` pixels.
    sigma : float
        Standard deviation of the Gaussian (channels).
    floor : (C,) float32 array, optional
        Values that some pixel (of these spectra or others) reaches after smoothing: the
        result is the maximum of them and of these spectra's smoothed values, and pixels
        that cannot beat them are not smoothed.
    stats : dict, optional
        Receives ``pairs``: the fraction of (pixel, bin) pairs smoothed exactly.
    """
    from maxrf import kernels

    x = np.asarray(spectra)
    x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))  # the kernels take native order
    n, c = x.shape
    best = np.zeros(c, np.float32) if floor is None else np.array(floor, dtype=np.float32)
    stats = {} if stats is None else stats
    stats["pairs"] = 1.0
    if n == 0:
        return best
    plan = pruning_plan(x, sigma)
    if plan is None:
        return np.maximum(best, smooth_spectra(x, sigma).max(axis=0))
    exact = kernels.smoothed_max(x, plan.weights, plan.band, best)
    stats["pairs"] = exact / (n * plan.band.shape[1])
    return best


def pruning_plan(x: np.ndarray, sigma: float) -> _Plan | None:
    """The pruning's plan for the ``(n, C)`` spectra ``x``, or None where its bound does not
    hold (a kernel narrower than a channel, too few channels for the bins, negative or
    non-finite values): those spectra are smoothed whole."""
    from maxrf import kernels

    radius = int(4.0 * sigma + 0.5)
    if radius < 1 or x.shape[1] < 2 * (radius + kernels.BIN) or not _nonnegative(x):
        return None
    return _plan(x.shape[1], float(sigma))


def _nonnegative(x: np.ndarray) -> bool:
    if x.dtype.kind in "ub":
        return True
    return x.dtype.kind in "if" and bool(np.isfinite(x).all()) and bool(x.min() >= 0)


@dataclass(frozen=True)
class _Plan:
    """What the pruning needs for one (channels, sigma): built once per process."""

    weights: np.ndarray  # the Gaussian kernel, float64
    band: np.ndarray  # (2 reach + 1, bins) float32: see maxrf.kernels.smoothed_max


@functools.lru_cache(maxsize=8)
def _plan(channels: int, sigma: float) -> _Plan:
    from maxrf.kernels import BIN

    w = gaussian_kernel(sigma)
    radius = (w.size - 1) // 2
    bins = -(-channels // BIN)
    # the weight of input channel j in output channel c, mirror at both ends (j may get two)
    out = np.repeat(np.arange(channels), w.size)
    src = _mirror(out + np.tile(np.arange(-radius, radius + 1), channels), channels)
    key, inverse = np.unique(out * channels + src, return_inverse=True)
    weight = np.bincount(inverse, weights=np.tile(w, channels))
    bound = np.zeros((bins, bins))  # [source bin, output bin]: the largest weight between them
    np.maximum.at(bound, ((key % channels) // BIN, (key // channels) // BIN), weight)
    reach = (radius + BIN - 1) // BIN + 1  # source bins further away weigh nothing
    band = np.zeros((2 * reach + 1, bins), dtype=np.float32)
    for d in range(-reach, reach + 1):
        lo, hi = max(0, -d), min(bins, bins - d)
        band[d + reach, lo:hi] = bound[np.arange(lo, hi) + d, np.arange(lo, hi)]
    return _Plan(w, band)


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    """Index into ``n`` channels of position ``i`` under scipy's 'mirror' extension."""
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def seed_max_spectrum(ds: Any, progress: bool = False, client: Any = None) -> np.ndarray:
    """maxrf4u's max spectrum of a DataStack: stored, or computed once and stored.

    The stored ``smoothed_max_spectrum`` when there is one; for a store converted with
    smoothing (``sigma`` > 0), its max spectrum (already smoothed, as maxrf4u's). Else the
    maximum over pixels of the cube smoothed by :data:`SEED_SIGMA`, in one pass of
    :class:`SmoothedMax` over the stored cube, then added to the store
    (:func:`maxrf.store.add_summary_array`) so later calls only read it; a read-only store
    (or one another process is writing) gets it computed and not stored.

    Parameters
    ----------
    ds : DataStack
        The store.
    progress : bool
        Show the pass's progress.
    client : dask.distributed.Client or str, optional
        Run the pass on this cluster.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` float64 (counts).
    """
    from maxrf import engine
    from maxrf.store import add_summary_array

    stored = ds.smoothed_max_spectrum
    if stored is not None:
        return stored
    if ds.convert_sigma > 0:
        return np.asarray(ds.max_spectrum, dtype=np.float64)
    result = engine.run(ds.block_source(), {"smax": SmoothedMax()}, client=client,
                        progress=progress, description="smoothed max spectrum")["smax"]
    add_summary_array(ds.path, "smoothed_max_spectrum", result)
    return result
