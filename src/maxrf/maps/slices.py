"""Peak slices of the max spectrum and their maps (seed formula), as one engine reduction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.signal as ssg

from maxrf.engine import Block, PixelMaps
from maxrf.errors import ParameterError
from maxrf.maps.sources import BATCH_VALUES
from maxrf.maps.sums import ChannelWindows
from maxrf.peaks import noise_prominence

AUTO_SIGMA = 5.0
"""Significance (standard deviations of the local counting noise of the max spectrum) of
the peaks sliced by default (``prominence=None``), as in the hotmax atlas."""


def _as_spectrum_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.size != y.size or x.size < 3:
        raise ParameterError(
            f"x_keVs and y_max must be 1-D arrays of the same length (>= 3), got {x.shape} and {y.shape}"
        )
    if not np.all(np.isfinite(x)) or not np.all(np.diff(x) > 0):
        raise ParameterError("x_keVs must be finite and strictly increasing (keV)")
    return x, y


def _nearest_index(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest value of the sorted axis ``x`` (the first one on a tie), as the
    seed's ``argmin((x - v)**2)``."""
    j = np.clip(np.searchsorted(x, values), 1, x.size - 1)
    left = x[j - 1]
    right = x[j]
    take_left = (values - left) ** 2 <= (right - values) ** 2
    return np.where(take_left, j - 1, j).astype(np.int64)


def get_slices(
    x_keVs: Any, y_max: Any, prominence: float | Any | None = 0.5, rel_height: float = 0.2,
    peaks: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a (max) spectrum and the channel slices around them (seed semantics).

    Parameters
    ----------
    x_keVs : array_like
        ``(C,)`` channel energies (keV), increasing.
    y_max : array_like
        ``(C,)`` spectrum (counts), usually the max spectrum.
    prominence : float, array_like or None
        Minimum peak prominence (counts), ``scipy.signal.find_peaks``: a number (the
        seed's default 0.5 suits a smoothed cube; on raw counts it keeps every noise
        wiggle), a per-channel array, or None for :data:`AUTO_SIGMA` standard deviations
        of the local counting noise (:func:`maxrf.peaks.noise_prominence`, the rule of
        the hotmax atlas).
    rel_height : float
        Height (fraction of the prominence below the top) at which the peak width is
        measured (``scipy.signal.peak_widths``).
    peaks : array_like of int, optional
        The peak channels to slice, instead of finding them (``prominence`` is then unused):
        e.g. :func:`maxrf.peaklist.max_spectrum_peaks`, the list hotmax uses.

    Returns
    -------
    peaks_xy : numpy.ndarray
        ``(k, 2)`` peak energy (keV) and height (counts).
    slices : numpy.ndarray
        ``(k, 3)`` int ``[left, peak, right]`` channel indices; the bases lie ``2 x`` the
        width at ``rel_height`` on either side of the peak (nearest channel). A slice is at
        least one channel wide on each side of its peak (the seed divided by zero when the
        width rounded to nothing).
    """
    x, y = _as_spectrum_pair(x_keVs, y_max)
    if peaks is not None:
        peaks = np.asarray(peaks, dtype=np.intp)
    else:
        if prominence is None:
            prominence = noise_prominence(y, AUTO_SIGMA)
        peaks, _ = ssg.find_peaks(y, prominence=prominence)
    if peaks.size == 0:
        return np.zeros((0, 2)), np.zeros((0, 3), dtype=np.int64)
    widths = ssg.peak_widths(y, peaks, rel_height=rel_height)[0]
    dx = x[1] - x[0]
    px = x[peaks]
    left = _nearest_index(x, px - 2 * dx * widths)
    right = _nearest_index(x, px + 2 * dx * widths)
    left = np.minimum(left, peaks - 1)
    right = np.maximum(right, peaks + 1)
    peaks_xy = np.c_[px, y[peaks]]
    slices = np.c_[left, peaks, right].astype(np.int64)
    return peaks_xy, slices


def peak_labels(peaks_keV: Iterable[float]) -> list[str]:
    """File-name labels of peak maps: ``peak-07-6.40keV`` (index, energy in keV)."""
    keVs = list(peaks_keV)
    width = max(2, len(str(max(len(keVs) - 1, 0))))
    return [f"peak-{i:0{width}d}-{float(e):.2f}keV" for i, e in enumerate(keVs)]


def _check_slices(slices: Any, n_channels: int) -> np.ndarray:
    s = np.asarray(slices, dtype=np.int64).reshape(-1, 3)
    if s.size and (
        np.any(s[:, 0] < 0) or np.any(s[:, 2] >= n_channels) or np.any(s[:, 2] <= s[:, 0])
        or np.any(s[:, 1] < s[:, 0]) or np.any(s[:, 1] > s[:, 2])
    ):
        raise ParameterError(
            f"slices must be [left, peak, right] channels with 0 <= left <= peak <= right < "
            f"{n_channels} and left < right"
        )
    return s


class PeakSliceMaps(PixelMaps):
    """Peak maps (seed formula) and keV maps of ``k`` channel slices: ``(2k, r, c)``.

    Rows ``0..k-1`` are the peak maps ``sum(slice)/d - (first + last)/2`` (counts per
    channel), rows ``k..2k-1`` the energy (keV) of the per-pixel maximum in each slice.

    Parameters
    ----------
    slices : array_like
        ``(k, 3)`` ``[left, peak, right]`` channel indices (inclusive ends).
    energies : array_like
        ``(C,)`` channel energies (keV).
    kev_maps : bool
        Also compute the keV maps (otherwise only ``k`` rows).
    """

    def __init__(self, slices: Any, energies: Any, kev_maps: bool = True):
        self.energies = np.asarray(energies, dtype=float)
        self.slices = _check_slices(slices, self.energies.size)
        self.kev_maps = bool(kev_maps)
        s = self.slices
        self.windows = ChannelWindows(s[:, [0, 2]])
        if s.size:
            self.lo = int(s[:, 0].min())
            self.hi = int(s[:, 2].max()) + 1
            bounds = np.unique(np.concatenate([s[:, 0], s[:, 2] + 1]))
            self.seg_starts = bounds[:-1] - self.lo  # reduceat indices inside [lo, hi)
            self.pos_left = np.searchsorted(bounds, s[:, 0])
            self.pos_right = np.searchsorted(bounds, s[:, 2] + 1)
        self.d = (s[:, 2] - s[:, 0]).astype(np.float64)

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n_ch = data.shape
        k = self.slices.shape[0]
        rows = 2 * k if self.kev_maps else k
        out = np.empty((rows, r * c), dtype=np.float32)
        if k == 0:
            return out.reshape(rows, r, c)
        flat = data.reshape(r * c, n_ch)
        si, sk = self.slices[:, 0], self.slices[:, 2]
        # few slices: argmax slice by slice; many: one segmented max of (value, position) keys
        use_keys = self.kev_maps and k > 24 and flat.dtype.kind in "uib"
        batch = max(1, 2 * BATCH_VALUES // max(1, self.hi - self.lo))
        for b0 in range(0, r * c, batch):
            x = flat[b0 : b0 + batch]
            xs = x[:, self.lo : self.hi]
            sums = self.windows.sums(x)
            ends = x[:, si].astype(np.float64) + x[:, sk].astype(np.float64)
            out[:k, b0 : b0 + batch] = (sums / self.d - ends / 2).T
            if not self.kev_maps:
                continue
            channels = self._argmax_keys(xs) if use_keys else None
            if channels is not None:
                out[k:, b0 : b0 + batch] = self.energies[channels].T
            else:
                for j in range(k):
                    am = np.argmax(x[:, si[j] : sk[j] + 1], axis=1)
                    out[k + j, b0 : b0 + batch] = self.energies[si[j] + am]
        return out.reshape(rows, r, c)

    def _argmax_keys(self, xs: np.ndarray) -> np.ndarray | None:
        """``(n, k)`` channel of the first maximum of every slice, from integer keys
        ``value * 2**b + (last - position)`` maximised over the disjoint segments between
        slice boundaries, then over each slice's run of segments (``reduceat`` with
        interleaved start/stop indices). None if the keys would overflow int64."""
        nb = xs.shape[1]
        bits = max(1, int(nb - 1).bit_length())
        vmin = int(xs.min())
        span = int(xs.max()) - vmin
        if span.bit_length() + bits > 62:
            return None
        kt = np.int32 if span.bit_length() + bits <= 31 else np.int64
        key = xs.astype(kt)
        if vmin:
            key -= kt(vmin)
        key <<= bits
        key += np.arange(nb - 1, -1, -1, dtype=kt)
        segmax = np.maximum.reduceat(key, self.seg_starts, axis=1)
        segmax = np.concatenate([segmax, segmax[:, :1]], axis=1)  # room for stop == n_segments
        idx = np.empty(2 * self.pos_left.size, dtype=np.intp)
        idx[0::2] = self.pos_left
        idx[1::2] = self.pos_right
        smax = np.maximum.reduceat(segmax, idx, axis=1)[:, 0::2]
        return self.lo + (nb - 1) - (smax & ((1 << bits) - 1)).astype(np.int64)


def seed_peak_map(peak_slice: np.ndarray) -> np.ndarray:
    """The seed's formula on one slice ``(..., n)`` (channels last): reference implementation.

    Returns ``sum(slice)/d - (slice[..., 0] + slice[..., -1]) / 2`` with ``d = n - 1``.
    """
    s = np.asarray(peak_slice, dtype=np.float64)
    d = s.shape[-1] - 1
    return np.sum(s, axis=-1) / d - (s[..., 0] + s[..., -1]) / 2


