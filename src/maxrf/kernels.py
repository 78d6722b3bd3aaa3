"""Compiled (numba) loops of the engine's per-block reductions.

Each kernel walks a block's ``(pixels, channels)`` values once, pixel by pixel, so a
pixel's spectrum comes from memory once and stays in the L1 cache for all that is done
with it. numpy needs one pass over the whole block per operation (max, then argmax, then
sum, then the smoothed max's bin sums...), each a trip through memory: on convert's
uint16 blocks those passes were most of the CPU time of convert
(benchmarks/results/convert.json).

Compiled once per machine and cached on disk (``cache=True``): the first call in a
process loads the cache (about 0.2 s), the first on a machine compiles (a few seconds).
The kernels release the GIL, so the engine's worker threads run them in parallel.
"""

from __future__ import annotations

import numba
import numpy as np

BIN = 4
"""Channels per bin of the smoothed max's pruning bound (a compile-time constant, so the
bin loops unroll): a wider bin is a cheaper but looser bound (about ``2 BIN - 1`` kernel
peak weights per bin sum: 34 % too high on a flat spectrum at 4, 80 % at 8)."""

KEEP = np.float32(1.0 - 1e-5)
"""A bin is smoothed unless its bound is at most the lowest best value in it times this:
the margin (below the best, so a pruned pixel's exact value is below it too) is far above
the float32 rounding of the bound (17 terms, ~1e-6)."""

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "fastmath": True}


@numba.njit(**_JIT)
def _stats_row(x, p, maximum, first, total):  # pragma: no cover - compiled
    # selects, not a branch, so the loop vectorises (with 32-bit ``first`` and ``total``
    # on 8/16-bit counts: 0.11 against 0.29 CPU s/GiB with 64-bit ones or the branch)
    for j in range(x.shape[1]):
        v = x[p, j]
        total[j] += v
        raise_ = v > maximum[j]  # strictly: ties keep the first pixel, as argmax
        maximum[j] = v if raise_ else maximum[j]
        first[j] = p if raise_ else first[j]


@numba.njit(**_JIT)
def _start_stats(x, maximum, first):  # pragma: no cover - compiled
    for j in range(x.shape[1]):
        maximum[j] = x[0, j]
        first[j] = 0


@numba.njit(**_JIT)
def spectra_stats(x, maximum, first, total):  # pragma: no cover - compiled
    """Per channel of an integer ``(n, C)`` block, n >= 1: the maximum, the first pixel
    holding it (row-major, as ``argmax``) and the sum, into ``maximum`` ``(C,)`` (x's
    dtype), ``first`` ``(C,)`` integers and ``total`` ``(C,)`` integers (added to), wide
    enough for ``n`` and the sum (:func:`maxrf.summary.accumulators`)."""
    _start_stats(x, maximum, first)
    for p in range(x.shape[0]):
        _stats_row(x, p, maximum, first, total)


@numba.njit(**_JIT)
def _bin_lows(best, bins):  # pragma: no cover - compiled
    """Per bin, the lowest ``best`` of its channels."""
    c = best.size
    low = np.empty(bins, dtype=np.float32)
    for b in range(bins):
        lo = np.float32(np.inf)
        for j in range(b * BIN, min(c, (b + 1) * BIN)):
            lo = min(lo, best[j])
        low[b] = lo
    return low


@numba.njit(inline="always", **_JIT)
def _bounds(x, p, band, sums, upper):  # pragma: no cover - compiled
    """Pixel ``p``'s upper bounds per bin, into ``upper``: the banded sum of its bin sums."""
    c = x.shape[1]
    taps, bins = band.shape
    reach = (taps - 1) // 2
    full = c // BIN
    for b in range(full):
        s = np.float32(x[p, b * BIN])
        for k in range(1, BIN):
            s += np.float32(x[p, b * BIN + k])
        sums[reach + b] = s
    if full < bins:  # a partial last bin
        s = np.float32(0.0)
        for j in range(full * BIN, c):
            s += np.float32(x[p, j])
        sums[reach + full] = s
    for b in range(bins):
        upper[b] = 0.0
    for d in range(taps):
        for b in range(bins):
            upper[b] += band[d, b] * sums[b + d]


@numba.njit(**_JIT)
def _fill_row(x, p, r, row):  # pragma: no cover - compiled
    """Pixel ``p``'s spectrum as float64 with ``r`` channels of scipy's 'mirror' extension
    at both ends (``x[-k] = x[k]``, ``x[c-1+k] = x[c-1-k]``)."""
    c = x.shape[1]
    for j in range(c):
        row[r + j] = x[p, j]
    for k in range(1, r + 1):
        row[r - k] = row[r + k]
        row[r + c - 1 + k] = row[r + c - 1 - k]


@numba.njit(inline="always", **_JIT)
def _exact_bin(row, weights, j0, c, best):  # pragma: no cover - compiled
    """Raise ``best`` with the exact smoothed values of the bin starting at channel ``j0``
    (``row`` as :func:`_fill_row` makes it); returns the lowest ``best`` in the bin."""
    a0 = a1 = a2 = a3 = 0.0  # the bin's BIN = 4 channels at once (one vector register)
    for k in range(weights.size):
        w = weights[k]
        a0 += w * row[j0 + k]
        a1 += w * row[j0 + k + 1]
        a2 += w * row[j0 + k + 2]
        a3 += w * row[j0 + k + 3]
    acc = (a0, a1, a2, a3)
    lo = np.float32(np.inf)
    for i in range(min(BIN, c - j0)):
        v = np.float32(acc[i])
        if v > best[j0 + i]:
            best[j0 + i] = v
        lo = min(lo, best[j0 + i])
    return lo


@numba.njit(**_JIT)
def _smooth_row(x, p, weights, band, best, low, row, sums, upper):  # pragma: no cover - compiled
    """Raise ``best`` with pixel ``p``'s smoothed values where its bound says they may
    exceed it; returns the number of bins smoothed exactly."""
    _bounds(x, p, band, sums, upper)
    exact = 0
    for b in range(band.shape[1]):
        if upper[b] > low[b] * KEEP:
            if exact == 0:
                _fill_row(x, p, (weights.size - 1) // 2, row)
            exact += 1
            low[b] = _exact_bin(row, weights, b * BIN, x.shape[1], best)
    return exact


@numba.njit(**_JIT)
def _buffers(c, r, taps, bins):  # pragma: no cover - compiled
    # the row has room past the last partial bin: its exact sums read up to BIN - 1 beyond
    return (np.zeros(c + 2 * r + BIN, dtype=np.float64), np.zeros(bins + taps - 1, dtype=np.float32),
            np.empty(bins, dtype=np.float32))


@numba.njit(**_JIT)
def smoothed_max(x, weights, band, best):  # pragma: no cover - compiled
    """Raise ``best`` ``(C,)`` float32 to the per-channel maximum over the pixels of ``x``
    ``(n, C)`` (values >= 0, ``C > R``) of their spectra smoothed by ``weights`` (``2 R +
    1`` taps, float64, scipy's 'mirror' extension at both ends).

    ``best`` comes in holding a lower bound of the maximum (values some pixel reaches, or
    zeros). Per pixel, the channels are summed in bins of :data:`BIN`; ``band`` ``(2 reach
    + 1, bins)`` float32 holds, for output bin ``b``, the largest weight between any
    channel of bin ``b + d - reach`` and any of bin ``b`` (the mirror's doubled weights
    included), so the banded sum of the bin sums bounds the pixel's smoothed values in bin
    ``b`` from above. Only bins whose bound exceeds the lowest ``best`` in the bin are
    smoothed exactly (float64 sums, rounded to float32); the others cannot raise the
    maximum. Returns the number of (pixel, bin) pairs smoothed exactly.
    """
    taps, bins = band.shape
    row, sums, upper = _buffers(x.shape[1], (weights.size - 1) // 2, taps, bins)
    low = _bin_lows(best, bins)
    exact = 0
    for p in range(x.shape[0]):
        exact += _smooth_row(x, p, weights, band, best, low, row, sums, upper)
    return exact


@numba.njit(**_JIT)
def spectra_and_smoothed_max(x, maximum, first, total, weights, band,
                             best):  # pragma: no cover - compiled
    """:func:`spectra_stats` and :func:`smoothed_max` in one walk over the pixels."""
    taps, bins = band.shape
    row, sums, upper = _buffers(x.shape[1], (weights.size - 1) // 2, taps, bins)
    low = _bin_lows(best, bins)
    _start_stats(x, maximum, first)
    exact = 0
    for p in range(x.shape[0]):
        _stats_row(x, p, maximum, first, total)
        exact += _smooth_row(x, p, weights, band, best, low, row, sums, upper)
    return exact
