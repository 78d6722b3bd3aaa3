"""Energy bins and the spatially stratified pixel sample the components are fitted on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from maxrf import engine, physics
from maxrf.engine import Block
from maxrf.errors import ParameterError
from maxrf.store import DataStack


def energy_bins(energies: np.ndarray, mean_spectrum: np.ndarray, *, tube_kv: float = 40.0,
                fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV, min_keV: float = 0.9) -> np.ndarray:
    """Channel edges of bins half the detector resolution wide, over the range with signal.

    Parameters
    ----------
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV).
    mean_spectrum : numpy.ndarray
        ``(C,)`` mean spectrum (counts per pixel): the range ends where it fades.
    tube_kv : float
        Tube voltage (kV): nothing is fitted above it.
    fwhm_at_6keV : float
        Detector FWHM at 5.9 keV (keV).
    min_keV : float
        Lowest energy (keV): the zero peak and the noise below stay out.

    Returns
    -------
    numpy.ndarray
        Increasing channel indices ``(nb + 1,)``; bin ``j`` is ``[edges[j], edges[j+1])``.
    """
    e = np.asarray(energies, dtype=float)
    y = np.asarray(mean_spectrum, dtype=float)
    if e.ndim != 1 or y.shape != e.shape or e.size < 8:
        raise ParameterError("energies and mean_spectrum must be (C,) arrays of 8 channels or more")
    gain = float(np.median(np.diff(e)))
    if gain <= 0:
        raise ParameterError("energies must increase with the channel")
    signal = np.convolve(y, np.ones(9) / 9, mode="same")
    live = np.flatnonzero((signal > 1e-4 * signal.max()) & (e <= tube_kv) & (e >= min_keV))
    if live.size < 8:
        raise ParameterError("fewer than 8 channels with counts above min_keV")
    lo, hi = int(live[0]), int(live[-1]) + 1
    edges = [lo]
    while edges[-1] < hi:
        width = float(physics.fwhm_keV(e[edges[-1]], fwhm_at_6keV)) / 2
        edges.append(edges[-1] + max(1, int(round(width / gain))))
    edges[-1] = min(edges[-1], hi)
    return np.unique(np.asarray(edges, dtype=np.int64))


def bin_counts(data: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(n, C)`` counts -> ``(n, nb)`` float32 sums over the bins."""
    part = data[:, edges[0]:edges[-1]]
    starts = edges[:-1] - edges[0]
    if part.dtype.kind in "ui" and part.dtype.itemsize <= 2:
        # integer sums of 16-bit counts (no float copy of the block); exact in float32
        # below 2**24
        return np.add.reduceat(part, starts, axis=1, dtype=np.uint32).astype(np.float32)
    if part.dtype != np.float32:  # float32 sums are exact for counts below 2**24
        part = part.astype(np.float32)
    return np.add.reduceat(part, starts, axis=1)


# =========================================================================== sample
class SampleBlocks:
    """Engine source over a chosen subset of another source's blocks."""

    def __init__(self, source: Any, blocks: list[Block]):
        self.source, self._blocks, self.shape = source, blocks, source.shape

    def blocks(self) -> list[Block]:
        return self._blocks

    def read_block(self, block: Block) -> np.ndarray:
        return self.source.read_block(block)


class PixelSample(engine.Reduction):
    """Binned spectra of ``per_block`` pixels of each block, evenly spaced in raster order
    (a regular lattice across the block)."""

    def __init__(self, edges: np.ndarray, per_block: int):
        self.edges, self.per_block = edges, per_block

    def block(self, data: np.ndarray, where: Block) -> tuple[np.ndarray, np.ndarray]:
        r, c, n = data.shape
        step = r * c / min(r * c, self.per_block)
        flat = np.unique(np.minimum((np.arange(min(r * c, self.per_block)) + 0.5) * step, r * c - 1)
                         .astype(np.int64))
        rr, cc = np.divmod(flat, c)
        spectra = bin_counts(data[rr, cc], self.edges)
        return spectra, np.c_[rr + where.rows.start, cc + where.cols.start]

    def combine(self, parts: list, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        parts = sorted(parts, key=lambda p: p[0].index)
        return (np.concatenate([p[1][0] for p in parts]), np.concatenate([p[1][1] for p in parts]))


def sample_spectra(ds: DataStack, edges: np.ndarray, n_pixels: int, client: Any
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Binned spectra ``(n, nb)`` and ``[row, col]`` of a stratified pixel sample plus the
    hotmax spectra (rows ``-1, -1``)."""
    source = ds.block_source()
    blocks = source.blocks()
    h, w = ds.shape[:2]
    share = min(1.0, 3.0 * n_pixels / (h * w))
    n_blocks = min(len(blocks), max(8, int(math.ceil(share * len(blocks)))))
    chosen = [blocks[int(i)] for i in np.unique(np.linspace(0, len(blocks) - 1, n_blocks).round())]
    per_block = max(1, int(math.ceil(n_pixels / len(chosen))))
    out = engine.run(SampleBlocks(source, chosen), {"s": PixelSample(edges, per_block)}, client=client)
    spectra, coords = out["s"]
    if "hotmax" in ds.layers:
        hot = np.asarray(ds.read("hotmax")["spectra"], dtype=float)
        if hot.ndim == 2 and hot.shape[1] == ds.shape[2] and hot.shape[0]:
            spectra = np.concatenate([spectra, bin_counts(hot, edges)])
            coords = np.concatenate([coords, np.full((hot.shape[0], 2), -1)])
    return spectra, coords


