"""The seed's max spectrum: the maximum over pixels of the spectrally smoothed cube.

maxrf4u smooths every pixel's spectrum (a Gaussian of :data:`SEED_SIGMA` channels) when it
builds its datastack, so its max spectrum has one maximum per real peak and the seed's
``get_slices(ds.energies(), ds.max_spectrum())`` (prominence 0.5 counts) finds the ~20
peaks of the scan. maxrf keeps the raw counts, whose max spectrum is a maximum of noise
too: sliced the same way it gives hundreds of "peaks". :class:`SmoothedMax` computes the
seed's spectrum in convert's one pass (from the blocks it reads anyway); the seed-style
call ``ds.max_spectrum()`` returns it, while ``ds.max_spectrum`` (no call) stays the raw
maximum, so the exact raw semantics stay reachable.

Smoothing every pixel's spectrum is the expensive part (an FFT per pixel: several times
the rest of convert's pass). :func:`smoothed_max` gets the same maximum by pruning: per
block, each pixel's spectrum is summed in bins of :data:`BIN` channels; the banded sum of
those bin sums, each times the largest kernel weight between the two bins, bounds the
pixel's smoothed value anywhere in a bin from above. A few seed pixels (per bin, the one
with the largest bound) are smoothed exactly, which bounds the maximum from below; only
the (pixel, bin) pairs whose upper bound exceeds that lower bound are smoothed exactly.
The others provably cannot raise the maximum, so the result is the maximum of the
exactly smoothed cube. Counts must be >= 0 for the bound; other data are smoothed whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from maxrf.engine import Block, Reduction, first_row_equal

SEED_SIGMA = 7.0
"""Gaussian smoothing (channels) of maxrf4u's datastack, and of the smoothed max spectrum."""

BIN = 4
"""Channels per bin of the pruning bound: a wider bin is a cheaper but looser bound (about
``(2 BIN - 1)`` times the kernel's peak weight too high on a flat spectrum: 34 % at 4, 80 %
at 8, which leaves 10 % and 30-45 % of the (pixel, bin) pairs of a synthetic scan)."""

DENSE_BIN = 0.25
"""A bin with more than this fraction of the pixels left after pruning is computed for all
pixels at once (one matrix product over the run of such bins), cheaper than pair by pair."""

WHOLE_BLOCK = 0.3
"""With more than this fraction of all (pixel, bin) pairs left, the block is smoothed whole
by FFT instead (a pair costs more than its share of the FFT)."""

_SLAB_CHANNELS = 32  # channels per matrix product of a dense run (the band matrix grows as its square)

_MIN_PIXELS = 64  # fewer pixels: the bounds cost more than smoothing them all

_TOLERANCE = np.float32(1e-5)
"""Relative margin of the pruning test, far above the float32 rounding of the bound."""


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
        return smoothed_max(data.reshape(r * c, n), self.sigma)

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


def smoothed_max(spectra: np.ndarray, sigma: float = SEED_SIGMA, bin_width: int = BIN,
                 stats: dict | None = None) -> np.ndarray:
    """``smooth_spectra(spectra, sigma).max(axis=0)`` of ``(n, C)`` spectra, float32, by pruning.

    Equal to the maximum over the rows of ``scipy.ndimage.gaussian_filter1d(x, sigma,
    mode='mirror')`` to float32 rounding (see the module docstring for the bound). Spectra
    with negative or non-finite values, or too few channels for the bins, are smoothed
    whole. ``stats``, if given, receives ``pairs``: the fraction of (pixel, bin) pairs
    smoothed exactly.
    """
    x = np.asarray(spectra)
    n, c = x.shape
    radius = int(4.0 * sigma + 0.5)
    stats = {} if stats is None else stats
    stats["pairs"] = 1.0
    if (n < _MIN_PIXELS or radius < 1 or c < 2 * (radius + bin_width)
            or not _nonnegative(x)):
        return smooth_spectra(x, sigma).max(axis=0)
    plan = _plan(c, float(sigma), int(bin_width))
    upper = _upper_bounds(_bin_sums(x, plan), plan)
    best, lower = _seed_bounds(x, upper, plan)
    cand = upper > lower * (1 - _TOLERANCE)  # (pixel, bin) pairs that might raise the max
    per_bin = cand.sum(axis=0)
    if per_bin.sum() > WHOLE_BLOCK * cand.size:  # little to prune (flat, high counts)
        return np.maximum(best.reshape(-1)[:c], smooth_spectra(x, sigma).max(axis=0))
    dense = per_bin > DENSE_BIN * n
    exact = 0
    if dense.any():  # bins where many pixels are left: every pixel, in runs of bins
        step = max(1, _SLAB_CHANNELS // plan.width)
        for lo, hi in _runs(dense):
            for a in range(lo, hi, step):
                b = min(hi, a + step)
                np.maximum(best[a:b], _slab(x, a, b, plan), out=best[a:b])
        cand[:, dense] = False
        exact += int(dense.sum()) * n
    bins, pix = np.nonzero(cand.T)  # grouped by bin
    if pix.size:
        values = _windows(x, pix, bins, plan) @ plan.window_kernel
        starts = np.flatnonzero(np.concatenate([[True], bins[1:] != bins[:-1]]))
        hit = bins[starts]
        best[hit] = np.maximum(best[hit], np.maximum.reduceat(values, starts, axis=0))
    stats["pairs"] = (exact + pix.size) / (n * plan.bins)
    return best.reshape(-1)[:c]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _slab(x: np.ndarray, lo: int, hi: int, plan: _Plan) -> np.ndarray:
    """``(hi - lo, width)``: the maximum over all pixels of the exact values in bins lo:hi."""
    n, c = x.shape
    first, stop = lo * plan.width, hi * plan.width
    cols = np.arange(first - plan.radius, stop + plan.radius)
    if cols[0] >= 0 and cols[-1] < c:
        window = x[:, cols[0]:cols[-1] + 1].astype(np.float32)
    else:  # mirrored at the ends (past the end of a partial bin: clipped, values dropped)
        window = x[:, np.clip(_mirror(cols, c), 0, c - 1)].astype(np.float32)
    kernel = _band(stop - first, plan)
    return (window @ kernel).max(axis=0).reshape(hi - lo, plan.width)


@functools.lru_cache(maxsize=64)
def _band_cached(length: int, weights: bytes) -> np.ndarray:
    w = np.frombuffer(weights, dtype=np.float64)
    band = np.zeros((length + w.size - 1, length), dtype=np.float32)
    for t in range(length):
        band[t:t + w.size, t] = w
    return band


def _band(length: int, plan: _Plan) -> np.ndarray:
    """``(length + 2 radius, length)`` float32: a window of channels -> its smoothed values."""
    return _band_cached(length, plan.weights.tobytes())


def _nonnegative(x: np.ndarray) -> bool:
    if x.dtype.kind in "ub":
        return True
    return x.dtype.kind in "if" and bool(np.isfinite(x).all()) and bool(x.min() >= 0)


@dataclass(frozen=True)
class _Plan:
    """What the pruning needs for one (channels, sigma, bin width): built once per process."""

    channels: int
    radius: int
    width: int  # channels per bin
    bins: int
    reach: int  # bins on either side that a bin's smoothed values depend on
    bound: np.ndarray  # (bins, bins) float32: bound[src, out] = max kernel weight between them
    tile: int  # bins per block of the block-Toeplitz product of the interior bound
    toeplitz: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # that product's three blocks
    window_kernel: np.ndarray  # (width + 2 radius, width) float32: a bin's window -> its values
    weights: np.ndarray  # the Gaussian kernel, float64


@functools.lru_cache(maxsize=8)
def _plan(channels: int, sigma: float, width: int) -> _Plan:
    w = gaussian_kernel(sigma)
    radius = (w.size - 1) // 2
    bins = -(-channels // width)
    # the weight of input channel j in output channel c, mirror at both ends (j may get two)
    out = np.repeat(np.arange(channels), w.size)
    src = _mirror(out + np.tile(np.arange(-radius, radius + 1), channels), channels)
    key, inverse = np.unique(out * channels + src, return_inverse=True)
    weight = np.bincount(inverse, weights=np.tile(w, channels))
    bound = np.zeros((bins, bins))
    np.maximum.at(bound, ((key % channels) // width, (key // channels) // width), weight)
    reach = (radius + width - 1) // width + 1
    tile = 8 * (reach // 8 + 1)  # > reach: a tile depends on its two neighbours only
    toeplitz = None
    if bins % tile == 0 and bins >= 4 * tile:
        mid = bins // tile // 2 * tile  # an interior tile: no mirror effects
        toeplitz = tuple(np.ascontiguousarray(bound[mid + d * tile: mid + (d + 1) * tile,
                                                    mid: mid + tile], dtype=np.float32)
                         for d in (-1, 0, 1))
    span = width + 2 * radius
    kernel = np.zeros((span, width), dtype=np.float32)
    for t in range(width):
        kernel[t:t + w.size, t] = w
    return _Plan(channels, radius, width, bins, reach, bound.astype(np.float32), tile,
                 toeplitz, kernel, w)


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    """Index into ``n`` channels of position ``i`` under scipy's 'mirror' extension."""
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def _bin_sums(x: np.ndarray, plan: _Plan) -> np.ndarray:
    """``(n, bins)`` float32 sums of each pixel's channels per bin (the last may be partial)."""
    n, c = x.shape
    full = c // plan.width
    sums = np.empty((n, plan.bins), dtype=np.float32)
    head = sums[:, :full]
    end = full * plan.width
    np.copyto(head, x[:, 0:end:plan.width], casting="unsafe")
    for i in range(1, plan.width):
        np.add(head, x[:, i:end:plan.width], out=head, casting="unsafe")
    if full < plan.bins:
        sums[:, full] = x[:, end:].sum(axis=1)
    return sums


def _upper_bounds(sums: np.ndarray, plan: _Plan) -> np.ndarray:
    """``(n, bins)``: per pixel and bin, an upper bound of its smoothed values in the bin."""
    if plan.toeplitz is None:
        return sums @ plan.bound
    n, bins = sums.shape
    before, same, after = plan.toeplitz
    tiles = sums.reshape(-1, plan.tile)
    upper = tiles @ same
    upper[1:] += tiles[:-1] @ before
    upper[:-1] += tiles[1:] @ after
    upper = upper.reshape(n, bins)
    # the first and last bins: the mirror changes the weights, and the tile products
    # above mixed neighbouring pixels there
    edge = plan.reach + 1
    upper[:, :edge] = sums[:, :2 * edge] @ plan.bound[:2 * edge, :edge]
    upper[:, -edge:] = sums[:, -2 * edge:] @ plan.bound[-2 * edge:, -edge:]
    return upper


def _seed_bounds(x: np.ndarray, upper: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Exact smoothed values of seed pixels, ``(bins, width)``, and per bin their minimum.

    The seeds of a bin are the pixels with the largest upper bound in it and in its two
    neighbours; the best of them in every channel is a lower bound of the maximum there.
    """
    seeds = first_row_equal(upper, upper.max(axis=0))
    bins = np.arange(plan.bins)
    pix = np.concatenate([seeds, np.roll(seeds, 1), np.roll(seeds, -1)])
    values = _windows(x, pix, np.tile(bins, 3), plan) @ plan.window_kernel
    best = values.reshape(3, plan.bins, plan.width).max(axis=0)
    inside = (bins[:, None] * plan.width + np.arange(plan.width)) < plan.channels
    lower = np.where(inside, best, np.inf).min(axis=1).astype(np.float32)
    return best, lower


def _windows(x: np.ndarray, pix: np.ndarray, bins: np.ndarray, plan: _Plan) -> np.ndarray:
    """``(k, width + 2 radius)`` float32: the channels each (pixel, bin) pair's values need."""
    from numpy.lib.stride_tricks import as_strided

    n, c = x.shape
    span = plan.width + 2 * plan.radius
    start = bins * plan.width - plan.radius
    out = np.empty((pix.size, span), dtype=np.float32)
    inner = (start >= 0) & (start + span <= c)
    flat = np.ascontiguousarray(x).reshape(-1)
    rows = as_strided(flat, shape=(flat.size - span + 1, span),
                      strides=(flat.itemsize, flat.itemsize), writeable=False)
    i = np.flatnonzero(inner)
    out[i] = rows[pix[i] * c + start[i]]
    e = np.flatnonzero(~inner)
    if e.size:  # the bins at either end: mirrored channels (past the end of a partial bin:
        # clipped, and those values are dropped)
        cols = np.clip(_mirror(start[e, None] + np.arange(span), c), 0, c - 1)
        out[e] = x[pix[e, None], cols]
    return out
