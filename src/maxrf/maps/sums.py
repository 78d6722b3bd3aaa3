"""Window sums: the one kernel summing channel windows per spectrum, and the sum image."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from maxrf.engine import Block, PixelMaps
from maxrf.errors import ParameterError

__all__ = ["ChannelWindows", "SumImage", "WindowImages"]


class ChannelWindows:
    """Per spectrum, the sums of ``k`` channel windows: the one window-sum kernel.

    One segmented sum (``numpy.add.reduceat`` over the channels some window covers, split
    at every window boundary, then a cumulative sum over the segments), exact in int64 for
    integer counts (int32 segments for 8/16-bit counts when they cannot overflow), never a
    loop over the windows. Used by the peak-slice maps, the window element maps, the sum
    image and the viewer's energy-window maps.

    Parameters
    ----------
    windows : array_like
        ``(k, 2)`` ``[first, last]`` channel indices (inclusive), ``first <= last``.
    """

    def __init__(self, windows: ArrayLike):
        w = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
        if w.size and (np.any(w[:, 0] < 0) or np.any(w[:, 1] < w[:, 0])):
            raise ParameterError(f"windows must be [first, last] channels, first <= last: {w}")
        self.k = int(w.shape[0])
        if not self.k:
            return
        bounds = np.unique(np.concatenate([w[:, 0], w[:, 1] + 1]))
        pos_left = np.searchsorted(bounds, w[:, 0])
        pos_right = np.searchsorted(bounds, w[:, 1] + 1)
        # only the segments some window covers (not the gaps between windows) are summed:
        # gather those channels, reduce them, and index the sums of covered segments
        # (``ccount`` maps a boundary to the covered segments before it)
        covered = np.zeros(bounds.size - 1, dtype=bool)
        for a, b in zip(pos_left, pos_right):
            covered[a:b] = True
        lengths = np.diff(bounds)[covered]
        starts, stops = bounds[:-1][covered], bounds[1:][covered]
        self.contiguous = bool(np.all(starts[1:] == stops[:-1]))
        self.first, self.stop = int(starts[0]), int(stops[-1])
        self.columns = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
        self.col_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
        ccount = np.concatenate([[0], np.cumsum(covered)])
        self.cpos_left, self.cpos_right = ccount[pos_left], ccount[pos_right]
        self.max_segment = int(lengths.max())

    def sums(self, x: np.ndarray) -> np.ndarray:
        """``(n, k)`` float64 window sums of the spectra ``x`` ``(n, C)``."""
        if not self.k:
            return np.zeros((x.shape[0], 0))
        acc = np.int64 if x.dtype.kind in "uib" else np.float64
        small_ints = x.dtype.kind in "uib" and x.dtype.itemsize <= 2
        seg_acc = np.int32 if small_ints and self.max_segment * 2**16 < 2**31 else acc
        if self.contiguous:  # the covered channels are one run: a view, no gather
            part = x[:, self.first : self.stop]
        else:
            part = np.take(x, self.columns, axis=1)
        seg = np.add.reduceat(part, self.col_starts, axis=1, dtype=seg_acc)
        cum = np.zeros((x.shape[0], seg.shape[1] + 1), dtype=acc)
        np.cumsum(seg, axis=1, dtype=acc, out=cum[:, 1:])
        return (cum[:, self.cpos_right] - cum[:, self.cpos_left]).astype(np.float64)


class SumImage(PixelMaps):
    """Per pixel, the counts summed over the channels ``lo .. hi`` (inclusive; default the
    last channel): ``(1, r, c)`` float64 (:class:`ChannelWindows`)."""

    dtype = np.float64

    def __init__(self, lo: int, hi: int | None = None):
        self.lo = int(lo)
        self.hi = None if hi is None else int(hi)

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n_ch = data.shape
        hi = n_ch - 1 if self.hi is None else min(self.hi, n_ch - 1)
        if hi < self.lo:
            return np.zeros((1, r, c))
        sums = ChannelWindows([[self.lo, hi]]).sums(data.reshape(r * c, n_ch))
        return sums.T.reshape(1, r, c)


class WindowImages(PixelMaps):
    """Per pixel, the counts in each of ``k`` channel windows: ``(k, r, c)`` float64
    (:class:`ChannelWindows`; ``windows`` as there)."""

    dtype = np.float64

    def __init__(self, windows: ArrayLike):
        self.windows = ChannelWindows(windows)

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n_ch = data.shape
        return self.windows.sums(data.reshape(r * c, n_ch)).T.reshape(self.windows.k, r, c)
