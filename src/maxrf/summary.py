"""Convert's summary spectra of an integer cube in one compiled walk over each block.

The max spectrum with the pixel holding each maximum, the mean spectrum and the seed's
smoothed max spectrum are what :class:`maxrf.engine.MaxSpectrum`,
:class:`maxrf.engine.MeanSpectrum` and :class:`maxrf.seed_spectrum.SmoothedMax` compute;
as three reductions each walks the whole block in memory again (numpy: max, argmax and
sum are three passes more), which cost more CPU than compressing and writing the cube.
:class:`SummarySpectra` gets all of them from one walk over the pixels
(:func:`maxrf.kernels.spectra_and_smoothed_max`), each pixel's spectrum read once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maxrf.engine import Block, MaxSpectrum, Reduction
from maxrf.seed_spectrum import SEED_SIGMA, SmoothedMax, pruning_plan

_WIDE = {"u": np.uint64, "i": np.int64}

NARROW_PIXELS = 65535
"""Most pixels per block whose 8/16-bit counts are summed in 32-bit integers: 65535 x
65535 < 2**32 and 65535 x 32768 < 2**31."""


def accumulators(dtype: np.dtype, pixels: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The first-pixel index and sum arrays of :func:`maxrf.kernels.spectra_stats` for a
    block of ``pixels`` spectra of ``dtype``: 32-bit where they cannot overflow (8/16-bit
    counts, at most :data:`NARROW_PIXELS` pixels), whose loop vectorises twice as wide,
    else 64-bit."""
    if dtype.itemsize <= 2 and pixels <= NARROW_PIXELS:
        return (np.empty(channels, dtype=np.int32),
                np.zeros(channels, dtype=np.uint32 if dtype.kind == "u" else np.int32))
    return np.empty(channels, dtype=np.int64), np.zeros(channels, dtype=_WIDE[dtype.kind])


class SummarySpectra(Reduction):
    """Max (with its pixels), mean and, optionally, smoothed max spectra of an integer cube.

    The result is a dict: ``max`` as :class:`maxrf.engine.MaxSpectrum` gives it (values,
    ``(C, 2)`` pixels), ``mean`` as :class:`maxrf.engine.MeanSpectrum` (float64) and, with
    ``smoothed``, ``smax`` as :class:`maxrf.seed_spectrum.SmoothedMax` (float64).

    Parameters
    ----------
    width : int
        Image width (pixels), for the flat pixel index of the maxima.
    smoothed : bool
        Also the seed's smoothed max spectrum.
    sigma : float
        Its Gaussian (channels).
    """

    def __init__(self, width: int, smoothed: bool = True, sigma: float = SEED_SIGMA):
        self.width = int(width)
        self.smax = SmoothedMax(sigma) if smoothed else None

    def block(self, data: np.ndarray, where: Block) -> tuple:
        from maxrf import kernels

        r, c, n = data.shape
        # native byte order (numba compiles no other; an HDF5 file may hold big-endian counts)
        flat = np.ascontiguousarray(data.reshape(r * c, n), dtype=data.dtype.newbyteorder("="))
        if flat.dtype.kind not in "ui":
            raise TypeError(f"SummarySpectra takes integer counts, not {flat.dtype}")
        if flat.shape[0] == 0:
            return None
        maximum = np.empty(n, dtype=flat.dtype)
        first, total = accumulators(flat.dtype, flat.shape[0], n)
        best = None
        plan = None if self.smax is None else pruning_plan(flat, self.smax.sigma)
        if plan is not None:
            best = self.smax.floor(n)
            kernels.spectra_and_smoothed_max(flat, maximum, first, total, plan.weights, plan.band,
                                             best)
            self.smax.raise_floor(best)
        else:
            kernels.spectra_stats(flat, maximum, first, total)
            if self.smax is not None:  # data the bound does not hold for: smoothed whole
                best = self.smax.block(data, where)
        first = first.astype(np.int64)
        rows = where.rows.start + first // c
        cols = where.cols.start + first % c
        return maximum, rows * self.width + cols, total.astype(_WIDE[flat.dtype.kind]), best

    def start(self, shape: tuple[int, int]) -> Any:
        if self.smax is not None:
            self.smax.start(shape)
        return {"max": None, "total": None, "smax": None}

    def add(self, acc: Any, where: Block, part: Any) -> Any:
        if part is None:  # an empty block
            return acc
        maximum, flat_index, total, best = part
        acc["max"] = MaxSpectrum.merge(acc["max"], (maximum, flat_index))
        acc["total"] = total.copy() if acc["total"] is None else acc["total"] + total
        if best is not None:
            acc["smax"] = best.copy() if acc["smax"] is None else np.maximum(acc["smax"], best)
        return acc

    def finish(self, acc: Any, shape: tuple[int, int]) -> dict[str, Any]:
        out = {"max": MaxSpectrum.pixels(acc["max"], shape[1]),
               "mean": acc["total"].astype(np.float64) / (shape[0] * shape[1])}
        if self.smax is not None:
            out["smax"] = np.asarray(acc["smax"], dtype=np.float64)
        return out

    def combine(self, parts: list[tuple[Block, Any]], shape: tuple[int, int]) -> dict[str, Any]:
        return self.fold(parts, shape)
