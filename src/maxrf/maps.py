"""Peak-slice maps and element maps, all from one pass over the cube.

The seed (maxrf4u) sliced the cube at every peak of the max spectrum and read the whole
cube once per peak (22 peaks = 22 reads of a 1-30 GB file). Here every map -- peak maps,
keV maps, fitted or windowed element maps and the fit residual -- is a
:class:`maxrf.engine.PixelMaps` reduction fed from the same single read of each block
(:func:`compute_maps`).

Peak maps (:func:`get_peakmaps`)
--------------------------------
:func:`get_slices` finds the peaks of the max spectrum (``scipy.signal.find_peaks`` with a
``prominence``) and puts each slice's bases at ``2 x`` the peak width measured at
``rel_height`` on either side of the peak (the seed's rule), as channel indices
``[left, peak, right]``. For a slice ``si .. sk`` (inclusive) with ``d = sk - si`` the peak
map is the seed's formula, kept exactly::

    peak_map = sum(x[si : sk + 1]) / d - (x[si] + x[sk]) / 2

i.e. the slice's sum divided by its width in channels minus the linear baseline through
its two end channels (counts per channel; with ``norm=True`` divided by the map's maximum,
as in the seed). The keV map is the energy of the per-pixel maximum inside the slice.
Slice sums of all ``k`` slices come from one segmented sum per block
(``numpy.add.reduceat`` over the distinct slice boundaries, then a cumulative sum over the
segments), exact in int64 for integer cubes, never a loop of ``k`` reads. keV maps: up to
24 slices an ``argmax`` per slice on the block in memory; beyond, one segmented maximum of
integer keys ``value * 2**b + (last - channel)`` (the first maximum wins, as ``argmax``).
Cost on the 1 GiB benchmark cube: 21 slices in about the time of a plain numpy read of
the cube (12x faster than the seed's 21 reads); 618 slices (prominence 0.5 on an
unsmoothed cube) about 11 plain reads (the seed would need 618).

Element maps (:func:`element_maps`)
-----------------------------------
``method='fit'`` (default): every pixel spectrum ``x`` (channels in ``energy_range``) is
fitted by weighted linear least squares as ``T.T @ a`` with a *fixed* design ``T``:

* one template per element, :func:`maxrf.physics.element_spectrum` (all its lines at
  their relative intensities, Gaussians at the detector resolution, Si escape peaks), of
  unit total area -- so the amplitude is the element's counts per pixel (total area of its
  lines);
* instrument templates: Rayleigh and Compton scatter of the anode lines
  (:func:`maxrf.physics.scatter_spectrum`, with their escape peaks), the zero (noise) peak
  when it reaches the range, and one pile-up template (sum peaks of the main lines of the
  strongest elements, weighted by their mean-spectrum amplitudes);
* the continuum: :func:`maxrf.physics.continuum_spectrum` multiplied by Legendre
  polynomials of order ``0 .. continuum_order`` over the range (a smooth, physically
  shaped background with a slowly varying correction).

The fitted range is by default 1 keV up to 1.5 keV above the highest line of the elements
and the anode (at most ``tube_kv``): channels above hold only continuum.

Weights are ``w = 1 / max(mean spectrum, 1)`` (Poisson variance of the average pixel),
the same for every pixel, so the least-squares solution is one float32 matrix product per
block of pixels, ``B = (sqrt(w) * X) @ D`` (the right-hand sides of the normal equations,
``D`` the column-scaled weighted design), then ``A = B @ inv(G)`` in float64 with the
``m x m`` Gram matrix inverted once. The reduced chi-square
``sum(w * (x - model)**2) / (channels - m) = (sum(w x**2) - 2 a.b + a.G.a) / dof`` comes
from the same products, without forming the model spectra (its float32 rounding is about
1e-4 relative).

Negative amplitudes: the element, scatter, zero-peak and pile-up amplitudes are kept
non-negative (the continuum coefficients are free) by an active-set NNLS solved on the
``m x m`` normal equations -- ``b`` is already known, so the refinement never touches the
spectra again. Only pixels whose unconstrained solution has a negative constrained
amplitude are refined, all of them together: each round drops the negative columns
(all at once, where Lawson-Hanson would step back to the boundary), re-solves the
subproblems grouped by their pattern of free columns (one cached ``m x m`` inverse per
distinct pattern, applied to all the pixels that share it as one matrix product), and
adds back, one per pixel, the fixed column whose gradient says it should be positive,
until every pixel is feasible and satisfies the KKT conditions (at most ``2 m + 10``
rounds, then remaining negatives are clipped). On the synthetic scans it converges in
at most 3 rounds and equals a bounded-variable least-squares solution
(``scipy.optimize.lsq_linear``) to 1e-14; on the 1 GiB benchmark cube 90 % of the pixels
are refined and the refinement adds about 0.3 s (30 % of the unconstrained fit; see
``ElementMaps.refined_fraction`` and ``benchmarks/bench_maps.py``).

The detector resolution ``fwhm_at_6keV`` (FWHM at 5.9 keV) is estimated from the mean
spectrum when not given: widths of its strongest isolated peaks between 2 and 15 keV
(``scipy.signal.peak_widths`` at half height, converted with the Fano model), refined by a
1-D search of the weighted fit residual of the mean spectrum; the scattering angle (for the
Compton template) comes from the ``calibration`` layer when recorded there, else from a
1-D search of the same residual.

``method='window'``: each element's strongest *free* line group is integrated over a
window of +-1 FWHM with the seed's baseline rule (the same linear functional as a peak
map) and divided by the response of that functional to the element's own template, so
the result is again an estimate of the element's total counts per pixel. A line group is
free when no line of another requested element (or of the anode's Rayleigh/Compton
scatter) with at least 5 % of that element's strongest line lies within 2 FWHM of it. The
strongest free group (among the groups with at least 10 % of the element's strongest
group) is taken; when no group is free the least-interfered one is (interference = the
other lines' relative intensities times the fraction of their Gaussian inside the window,
relative to the element's own in-window intensity). Examples: As with Pb uses As K-beta
(As K-alpha sits on Pb L-alpha), Pb with As uses Pb L-beta, S with Pb has no free group
(S K-alpha on Pb M-alpha, S K-beta on Pb M-beta) and takes the least interfered, with
cross-talk -- use ``method='fit'`` there.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.signal as ssg
from scipy.special import ndtr

from maxrf import engine, physics
from maxrf.engine import Block, PixelMaps
from maxrf.errors import LayerMissingError, ParameterError
from maxrf.peaks import noise_prominence

__all__ = [
    "ElementMaps",
    "FitModel",
    "MapsResult",
    "PeakMaps",
    "compute_maps",
    "element_maps",
    "estimate_fwhm",
    "fit_model",
    "get_noise_level",
    "get_peakmaps",
    "get_slices",
    "histeq",
    "identified_elements",
    "peak_labels",
    "sum_image",
    "window_lines",
    "write_element_maps",
    "seed_peak_map",
    "write_peak_maps",
]

AUTO_SIGMA = 5.0
"""Significance (standard deviations of the local counting noise of the max spectrum) of
the peaks sliced by default (``prominence=None``), as in the hotmax atlas."""

#: values (pixels x channels) processed at once inside a block: keeps temporaries small
BATCH_VALUES = 2**20


# =========================================================================== sources
class _ArraySource:
    """Engine source over an in-memory numpy cube (picklable)."""

    def __init__(self, cube: np.ndarray, budget: int | None = None):
        self.cube = cube
        self.shape = tuple(int(s) for s in cube.shape)
        self.block = engine.block_shape(self.shape, max(4, cube.dtype.itemsize), budget)

    def blocks(self) -> list[Block]:
        return engine.tile_blocks(self.shape[0], self.shape[1], *self.block)

    def read_block(self, block: Block) -> np.ndarray:
        return np.ascontiguousarray(self.cube[block.rows, block.cols, :])


class _DaskSource:
    """Engine source over a dask cube: one block per (row, column) chunk, all channels."""

    def __init__(self, cube: Any):
        self.cube = cube
        self.shape = tuple(int(s) for s in cube.shape)

    def blocks(self) -> list[Block]:
        rows = np.concatenate([[0], np.cumsum(self.cube.chunks[0])])
        cols = np.concatenate([[0], np.cumsum(self.cube.chunks[1])])
        out = []
        for r0, r1 in zip(rows[:-1], rows[1:]):
            for c0, c1 in zip(cols[:-1], cols[1:]):
                out.append(Block(len(out), slice(int(r0), int(r1)), slice(int(c0), int(c1))))
        return out

    def read_block(self, block: Block) -> np.ndarray:
        part = self.cube[block.rows, block.cols, :]
        return np.ascontiguousarray(part.compute(scheduler="synchronous"))


@dataclass
class _Input:
    """What a map computation works on: a block source plus the scan's spectra."""

    source: Any
    shape: tuple[int, int, int]
    datastack: Any = None
    energies: np.ndarray | None = None
    max_spectrum: np.ndarray | None = None
    mean_spectrum: np.ndarray | None = None
    array: Any = None

    def require_energies(self, x_keVs: Any) -> np.ndarray:
        if x_keVs is not None:
            e = np.asarray(x_keVs, dtype=float)
        elif self.energies is not None:
            e = self.energies
        else:
            raise ParameterError("x_keVs (channel energies, keV) is needed for a bare cube")
        if e.shape != (self.shape[2],):
            raise ParameterError(
                f"x_keVs has shape {e.shape}, the cube has {self.shape[2]} channels"
            )
        return e

    def get_max(self, y_max: Any) -> np.ndarray:
        if y_max is not None:
            y = np.asarray(y_max, dtype=float)
        elif self.max_spectrum is not None:
            y = self.max_spectrum
        else:
            y = self._array_reduce("max")
        if y.shape != (self.shape[2],):
            raise ParameterError(f"y_max has shape {y.shape}, the cube has {self.shape[2]} channels")
        return y

    def get_mean(self) -> np.ndarray:
        if self.mean_spectrum is None:
            self.mean_spectrum = self._array_reduce("mean")
        return self.mean_spectrum

    def _array_reduce(self, how: str) -> np.ndarray:
        arr = self.array
        if how == "max":
            out = arr.max(axis=(0, 1))
        else:
            out = arr.mean(axis=(0, 1), dtype=np.float64)
        if hasattr(out, "compute"):
            out = out.compute()
        return np.asarray(out, dtype=float)


def _open_input(data: Any, need_energies: bool = True) -> _Input:
    """DataStack, path of one, numpy cube or dask cube -> _Input."""
    from maxrf.store import DataStack

    if isinstance(data, (str, os.PathLike)):
        data = DataStack(data)
    if isinstance(data, DataStack):
        energies = np.asarray(data.energies, dtype=float) if need_energies else None
        return _Input(
            data.block_source(), tuple(data.shape), data, energies,
            np.asarray(data.max_spectrum, dtype=float), np.asarray(data.sum_spectrum, dtype=float),
        )
    if hasattr(data, "dask") and hasattr(data, "chunks") and getattr(data, "ndim", 0) == 3:
        cube = data
        if len(cube.chunks[2]) != 1:
            cube = cube.rechunk({2: -1})
        return _Input(_DaskSource(cube), tuple(int(s) for s in cube.shape), array=cube)
    if isinstance(data, np.ndarray) and data.ndim == 3:
        return _Input(_ArraySource(data), tuple(int(s) for s in data.shape), array=data)
    raise ParameterError(
        "expected a DataStack (or its path) or an (H, W, C) numpy / dask cube, got "
        f"{type(data).__name__}"
    )


# =========================================================================== BLAS threads
def _openblas_handles() -> list[tuple[Any, Any]]:
    """(get, set) num-threads functions of numpy's bundled OpenBLAS, if found."""
    found = []
    libdir = os.path.dirname(np.__file__) + ".libs"
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    found.append((get, put))
                    break
    return found


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run the blocks' matrix products single-threaded (the engine already runs one block
    per core; nested BLAS threads oversubscribe the cores and slow the fit 2-3x)."""
    handles = []
    try:
        handles = _openblas_handles()
    except Exception:  # pragma: no cover - any ctypes trouble: leave BLAS alone
        handles = []
    saved = []
    for get, put in handles:
        try:
            saved.append((put, int(get())))
            put(1)
        except Exception:  # pragma: no cover
            pass
    try:
        yield
    finally:
        for put, n in saved:
            with contextlib.suppress(Exception):
                put(n)


def _run(inp: _Input, reductions: Mapping[str, PixelMaps], client: Any, progress: bool,
         description: str, outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    client = engine.get_client(client)
    ctx = _single_threaded_blas() if client is None else contextlib.nullcontext()
    with ctx:
        return engine.run(inp.source, reductions, client=client, progress=progress,
                          description=description, outputs=outputs)


# =========================================================================== slices
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
        if s.size:
            self.lo = int(s[:, 0].min())
            self.hi = int(s[:, 2].max()) + 1
            bounds = np.unique(np.concatenate([s[:, 0], s[:, 2] + 1]))
            self.seg_starts = bounds[:-1] - self.lo  # reduceat indices inside [lo, hi)
            self.pos_left = np.searchsorted(bounds, s[:, 0])
            self.pos_right = np.searchsorted(bounds, s[:, 2] + 1)
            # the window sums only need the segments some slice covers (not the gaps
            # between peaks): gather those channels, reduce them, and index the sums of
            # covered segments (``ccount`` maps a boundary to covered segments before it)
            covered = np.zeros(bounds.size - 1, dtype=bool)
            for a, b in zip(self.pos_left, self.pos_right):
                covered[a:b] = True
            lengths = np.diff(bounds)[covered]
            self.columns = np.concatenate(
                [np.arange(a, b) for a, b in zip(bounds[:-1][covered], bounds[1:][covered])])
            self.col_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
            ccount = np.concatenate([[0], np.cumsum(covered)])
            self.cpos_left, self.cpos_right = ccount[self.pos_left], ccount[self.pos_right]
            self.max_segment = int(lengths.max())
        self.d = (s[:, 2] - s[:, 0]).astype(np.float64)

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n_ch = data.shape
        k = self.slices.shape[0]
        rows = 2 * k if self.kev_maps else k
        out = np.empty((rows, r * c), dtype=np.float32)
        if k == 0:
            return out.reshape(rows, r, c)
        flat = data.reshape(r * c, n_ch)
        acc = np.int64 if flat.dtype.kind in "uib" else np.float64
        si, sk = self.slices[:, 0], self.slices[:, 2]
        # few slices: argmax slice by slice; many: one segmented max of (value, position) keys
        use_keys = self.kev_maps and k > 24 and flat.dtype.kind in "uib"
        batch = max(1, 2 * BATCH_VALUES // max(1, self.hi - self.lo))
        # segment sums of 8/16-bit counts fit int32 (half the memory traffic of int64)
        small_ints = flat.dtype.kind in "uib" and flat.dtype.itemsize <= 2
        seg_acc = np.int32 if small_ints and self.max_segment * 2**16 < 2**31 else acc
        for b0 in range(0, r * c, batch):
            x = flat[b0 : b0 + batch]
            xs = x[:, self.lo : self.hi]
            seg = np.add.reduceat(np.take(x, self.columns, axis=1), self.col_starts, axis=1,
                                  dtype=seg_acc)
            cum = np.zeros((x.shape[0], seg.shape[1] + 1), dtype=acc)
            np.cumsum(seg, axis=1, dtype=acc, out=cum[:, 1:])
            sums = (cum[:, self.cpos_right] - cum[:, self.cpos_left]).astype(np.float64)
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


# =========================================================================== fit model
@dataclass
class FitModel:
    """The fixed design of the per-pixel element fit.

    Attributes
    ----------
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV) of the cube.
    lo, hi : int
        Fitted channels ``lo .. hi - 1``.
    names : list of str
        Component names: element symbols, then ``'rayleigh'``, ``'compton'``, ``'zero'``,
        ``'pileup'`` (when present), ``'continuum0'``...
    kinds : list of str
        ``'element'``, ``'scatter'``, ``'pileup'`` or ``'continuum'`` per component.
    templates : numpy.ndarray
        ``(m, hi - lo)`` counts per channel per unit amplitude.
    weights : numpy.ndarray
        ``(hi - lo,)`` channel weights ``1 / max(mean spectrum, 1)``.
    constrained : numpy.ndarray
        ``(m,)`` bool: amplitude must be >= 0.
    elements : list of str
        Mapped elements (the first ``len(elements)`` components).
    fwhm_at_6keV : float
        Detector FWHM at 5.9 keV (keV) used for the templates.
    theta_deg : float
        Scattering angle (degrees) of the Compton template.
    anode : str
    tube_kv : float
    """

    energies: np.ndarray
    lo: int
    hi: int
    names: list[str]
    kinds: list[str]
    templates: np.ndarray
    weights: np.ndarray
    constrained: np.ndarray
    elements: list[str]
    fwhm_at_6keV: float
    theta_deg: float
    anode: str
    tube_kv: float
    norms: np.ndarray = field(init=False, repr=False)
    gram: np.ndarray = field(init=False, repr=False)
    gram_inv: np.ndarray = field(init=False, repr=False)
    design: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sw = np.sqrt(self.weights)
        tw = self.templates * sw[None, :]
        norms = np.sqrt(np.sum(tw**2, axis=1))
        if np.any(norms <= 0):
            bad = [n for n, v in zip(self.names, norms) if v <= 0]
            raise ParameterError(f"fit components with no counts in the energy range: {bad}")
        self.norms = norms
        tn = tw / norms[:, None]
        self.gram = tn @ tn.T  # (m, m), unit diagonal
        self.gram_inv = np.linalg.pinv(self.gram, rcond=1e-10, hermitian=True)
        # normal equations of a row spectrum x: b = (sqrt(w) * x) @ design, a = b @ gram_inv
        self.design = np.ascontiguousarray(tn.T, dtype=np.float32)  # (C', m)

    @property
    def m(self) -> int:
        return len(self.names)

    @property
    def dof(self) -> int:
        return max(1, (self.hi - self.lo) - self.m)

    def fit(self, spectra: np.ndarray, nonneg: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Fit in-memory spectra.

        Parameters
        ----------
        spectra : array_like
            ``(n, C)`` or ``(C,)`` counts on the cube's full energy axis.
        nonneg : bool
            Impose non-negative constrained amplitudes.

        Returns
        -------
        amplitudes : numpy.ndarray
            ``(n, m)`` (or ``(m,)``) amplitudes (counts: total area of each component).
        chi2 : numpy.ndarray
            ``(n,)`` (or scalar) reduced chi-square.
        """
        x = np.asarray(spectra)
        one = x.ndim == 1
        x2 = x.reshape(-1, x.shape[-1])
        amps, chi2, _ = _fit_rows(x2, _FitArrays(self), nonneg)
        return (amps[0], chi2[0]) if one else (amps, chi2)


def _fit_rows(x: np.ndarray, f: _FitArrays, nonneg: bool, cache: dict | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(amplitudes (n, m), reduced chi2 (n,), refined (n,) bool) of rows of full spectra.

    One matrix product per batch of rows (the projection is fixed); the non-negativity
    refinement and the chi-square then work on ``(n, m)`` arrays only.
    """
    n = x.shape[0]
    width = f.hi - f.lo
    b = np.empty((n, f.design.shape[1]))
    q = np.empty(n)
    batch = max(1, BATCH_VALUES // max(1, width))
    buf = np.empty((min(batch, n), width), dtype=np.float32)
    for b0 in range(0, n, batch):
        xs = buf[: min(batch, n - b0)]
        np.copyto(xs, x[b0 : b0 + batch, f.lo : f.hi], casting="unsafe")
        xs *= f.sqrt_w  # sqrt(w) * x, float32 (a mixed-type multiply is 2x slower)
        b[b0 : b0 + batch] = xs @ f.design  # the normal equations' right-hand side
        q[b0 : b0 + batch] = np.einsum("ij,ij->i", xs, xs)  # sum(w x**2)
    gram = f.gram
    a = b @ f.gram_inv  # unconstrained (normalised) amplitudes, float64
    refined = np.zeros(n, dtype=bool)
    if nonneg:
        a, refined = _nnls_gram(gram, b, a, f.constrained, cache=cache)
    ssr = q - 2 * np.einsum("ij,ij->i", a, b) + np.einsum("ij,ij->i", a @ gram, a)
    chi2 = np.maximum(ssr, 0.0) / f.dof
    return a / f.norms[None, :], chi2, refined


class _FitArrays:
    """The arrays of a FitModel that the blocks need (small, picklable)."""

    def __init__(self, model: FitModel):
        self.lo, self.hi = model.lo, model.hi
        self.sqrt_w = np.sqrt(model.weights).astype(np.float32)
        self.design = model.design
        self.gram = model.gram
        self.gram_inv = model.gram_inv
        self.norms = model.norms
        self.constrained = np.asarray(model.constrained, dtype=bool)
        self.dof = model.dof
        self.n_elements = len(model.elements)


def _pattern_inverse(gram: np.ndarray, free_row: np.ndarray) -> np.ndarray:
    """``(m, m)`` matrix holding ``inv(gram[F, F])`` at ``(F, F)``, zeros elsewhere."""
    m = gram.shape[0]
    out = np.zeros((m, m))
    cols = np.flatnonzero(free_row)
    if cols.size:
        out[np.ix_(cols, cols)] = np.linalg.pinv(gram[np.ix_(cols, cols)], rcond=1e-12,
                                                 hermitian=True)
    return out


def _solve_patterns(gram: np.ndarray, b: np.ndarray, free: np.ndarray,
                    cache: dict | None = None) -> np.ndarray:
    """Solve ``gram[F, F] x_F = b_F`` (``x = 0`` off ``F``) per row for its free set ``F``:
    rows grouped by ``F``, one cached embedded inverse per distinct pattern."""
    n, m = b.shape
    out = np.zeros((n, m))
    if n == 0:
        return out
    packed = np.ascontiguousarray(np.packbits(free, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=first.size))])
    cache = {} if cache is None else cache
    for g in range(first.size):
        rows = order[bounds[g] : bounds[g + 1]]
        key = packed[first[g]].tobytes()
        inv = cache.get(key)
        if inv is None:
            inv = _pattern_inverse(gram, free[first[g]])
            if len(cache) < 100_000:
                cache[key] = inv
        out[rows] = b[rows] @ inv
    return out


def _nnls_gram(gram: np.ndarray, b: np.ndarray, a0: np.ndarray, constrained: np.ndarray,
               max_iter: int | None = None, cache: dict | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Batched active-set NNLS on the normal equations ``min 1/2 a.G.a - b.a``.

    Only rows with a negative constrained amplitude in ``a0`` (the unconstrained solution)
    are refined. Each round drops the negative constrained columns of the rows that have
    some, adds back (one per row) the fixed column with the largest positive gradient of
    the rows that have none, and re-solves the changed rows grouped by free-set pattern;
    a row is done when it is feasible and satisfies the KKT conditions. Returns the
    amplitudes and the mask of refined rows.
    """
    a = a0.copy()
    n, m = a.shape
    cons = np.asarray(constrained, dtype=bool)
    need = np.flatnonzero(np.any(a[:, cons] < 0, axis=1))
    refined = np.zeros(n, dtype=bool)
    if need.size == 0:
        return a, refined
    refined[need] = True
    if max_iter is None:
        max_iter = 2 * m + 10
    x = a[need]
    bb = b[need]
    free = np.ones_like(x, dtype=bool)
    active = np.ones(need.size, dtype=bool)
    tol = 1e-9 * (1.0 + np.max(np.abs(bb), axis=1))
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xr = x[rows]
        fr = free[rows]
        neg = (xr < 0) & cons[None, :]
        has_neg = neg.any(axis=1)
        fr[has_neg] &= ~neg[has_neg]
        ok = np.flatnonzero(~has_neg)
        if ok.size:
            grad = bb[rows[ok]] - xr[ok] @ gram
            viol = (~fr[ok]) & cons[None, :] & (grad > tol[rows[ok], None])
            anyv = viol.any(axis=1)
            pick = np.where(viol, grad, -np.inf).argmax(axis=1)
            fr[ok[anyv], pick[anyv]] = True
            active[rows[ok[~anyv]]] = False
        free[rows] = fr
        todo = rows[active[rows]]
        if todo.size:
            x[todo] = _solve_patterns(gram, bb[todo], free[todo], cache)
    x[:, cons] = np.maximum(x[:, cons], 0.0)
    a[need] = x
    return a, refined


class ElementFit(PixelMaps):
    """Per-pixel weighted linear fit of a :class:`FitModel`: ``(k + 2, r, c)``.

    Rows ``0..k-1``: element amplitudes (counts), ``k``: reduced chi-square, ``k + 1``:
    1 where the non-negativity refinement changed the pixel.
    """

    def __init__(self, model: FitModel, nonneg: bool = True):
        self.arrays = _FitArrays(model)
        self.nonneg = bool(nonneg)
        self._cache: dict = {}

    def __getstate__(self) -> dict:
        return {"arrays": self.arrays, "nonneg": self.nonneg, "_cache": {}}

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n_ch = data.shape
        f = self.arrays
        k = f.n_elements
        out = np.empty((k + 2, r * c), dtype=np.float32)
        amps, chi2, refined = _fit_rows(data.reshape(r * c, n_ch), f, self.nonneg, self._cache)
        out[:k] = amps[:, :k].T
        out[k] = chi2
        out[k + 1] = refined
        return out.reshape(k + 2, r, c)


class SumImage(PixelMaps):
    """Sum over the channels ``lo .. C - 1`` per pixel (float64 counts): ``(1, r, c)``."""

    dtype = np.float64

    def __init__(self, lo: int):
        self.lo = int(lo)

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        acc = np.float64 if data.dtype.kind == "f" else np.int64
        return data[:, :, self.lo :].sum(axis=2, dtype=acc)[None].astype(np.float64)


# --------------------------------------------------------------------------- model building
def _legendre_basis(n: int, order: int) -> np.ndarray:
    t = np.linspace(-1.0, 1.0, n)
    return np.polynomial.legendre.legvander(t, order).T  # (order + 1, n)


def _pileup_template(energies: np.ndarray, elements: Sequence[str], amps: Sequence[float],
                     tube_kv: float, fwhm6: float, n_max: int = 6) -> np.ndarray | None:
    """Unit-area sum-peak template of the main lines of the strongest elements."""
    amps = np.maximum(np.asarray(amps, dtype=float), 0.0)
    if not len(elements) or not np.any(amps > 0):
        return None
    order = np.argsort(-amps)[:n_max]
    main = []
    for i in order:
        if amps[i] <= 0:
            continue
        lines = physics.element_lines(elements[i], tube_kv)
        rel = np.array([ln.rel_intensity for ln in lines])
        j = int(np.argmax(rel))
        main.append((lines[j].energy_keV, amps[i] * rel[j] / rel.sum()))
    centres, weights = [], []
    for p in range(len(main)):
        for q in range(p, len(main)):
            centres.append(main[p][0] + main[q][0])
            weights.append((1.0 if p == q else 2.0) * main[p][1] * main[q][1])
    c = np.array(centres)
    t = physics.gaussian_peaks(energies, c, np.array(weights), physics.fwhm_keV(c, fwhm6))
    total = t.sum()
    return t / total if total > 0 else None


class _Templates:
    """Templates on one energy axis, cached by resolution and angle (for the 1-D searches)."""

    def __init__(self, energies: np.ndarray, lo: int, hi: int, anode: str, tube_kv: float,
                 continuum_order: int):
        self.e, self.lo, self.hi = energies, lo, hi
        self.fit_e = energies[lo:hi]  # templates are computed on the fitted channels only
        self.anode, self.tube_kv = anode, tube_kv
        self.order = int(continuum_order)
        self._elements: dict[tuple[str, float], np.ndarray] = {}
        self._scatter: dict[tuple[float, float], dict[str, np.ndarray]] = {}
        self.continuum = physics.continuum_spectrum(self.fit_e, tube_kv=tube_kv)
        self.basis = _legendre_basis(hi - lo, self.order)

    def element(self, el: str, fwhm6: float) -> np.ndarray:
        key = (el, float(fwhm6))
        if key not in self._elements:
            self._elements[key] = physics.element_spectrum(
                el, self.fit_e, tube_kv=self.tube_kv, fwhm_at_6keV=fwhm6)
        return self._elements[key]

    def scatter(self, fwhm6: float, theta: float) -> dict[str, np.ndarray]:
        key = (float(fwhm6), float(theta))
        if key not in self._scatter:
            sc = physics.scatter_spectrum(self.fit_e, anode=self.anode, tube_kv=self.tube_kv,
                                          theta_deg=theta, fwhm_at_6keV=fwhm6)
            sc["zero"] = physics.zero_peak(self.fit_e, physics.noise_fwhm_keV(fwhm6))
            self._scatter[key] = sc
        return self._scatter[key]

    def design(self, elements: Sequence[str], fwhm6: float, theta: float,
               pileup: np.ndarray | None = None) -> tuple[list[str], list[str], np.ndarray]:
        """(names, kinds, templates (m, hi - lo)) of the fit components; ``pileup`` is
        given on the full axis."""
        lo, hi, e = self.lo, self.hi, self.e
        names: list[str] = []
        kinds: list[str] = []
        rows: list[np.ndarray] = []
        for el in elements:
            t = self.element(el, fwhm6)
            if t.sum() < 1e-3:
                raise ParameterError(
                    f"element {el} has no lines excited at {self.tube_kv} kV in the fitted "
                    f"range {e[lo]:.2f}..{e[hi - 1]:.2f} keV"
                )
            names.append(el)
            kinds.append("element")
            rows.append(t)
        sc = self.scatter(fwhm6, theta)
        for name in ("rayleigh", "compton", "zero"):
            if sc[name].sum() > 1e-4:
                names.append(name)
                kinds.append("scatter")
                rows.append(sc[name])
        if pileup is not None and pileup[lo:hi].sum() > 1e-3:
            names.append("pileup")
            kinds.append("pileup")
            rows.append(pileup[lo:hi])
        cont = self.continuum
        if cont.sum() <= 1e-6:  # no continuum in range (tube_kv below it): plain polynomials
            cont = np.ones(hi - lo)
        for j in range(self.order + 1):
            names.append(f"continuum{j}")
            kinds.append("continuum")
            rows.append(cont * self.basis[j])
        return names, kinds, np.array(rows)

    def ssr(self, y: np.ndarray, weights: np.ndarray, elements: Sequence[str], fwhm6: float,
            theta: float) -> float:
        """Weighted residual of the unconstrained fit of the spectrum ``y`` (full axis)."""
        try:
            _, _, t = self.design(elements, fwhm6, theta)
        except ParameterError:
            return math.inf
        amps, ssr = _wls(t, y[self.lo : self.hi], weights)
        return ssr


def _wls(t: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares of one spectrum on templates ``t`` (m, n) via the normal
    equations of the column-scaled design: (amplitudes (m,), weighted residual)."""
    sw = np.sqrt(weights)
    a = t * sw[None, :]
    yw = y * sw
    norms = np.sqrt(np.sum(a * a, axis=1))
    norms[norms == 0] = 1.0
    a /= norms[:, None]
    amps = np.linalg.pinv(a @ a.T, rcond=1e-12, hermitian=True) @ (a @ yw)
    r = yw - a.T @ amps
    return amps / norms, float(r @ r)


def _top_keV(elements: Sequence[str], anode: str, tube_kv: float) -> float:
    """Upper end (keV) of the default fit range: the highest line (>= 1 % of its element's
    strongest) of the elements and the anode, plus 1.5 keV."""
    lines = [ln.energy_keV for el in elements for ln in physics.element_lines(el, tube_kv)
             if ln.rel_intensity >= 0.01]
    lines += [ln.energy_keV for ln in physics.anode_lines(anode, tube_kv) if ln.rel_intensity >= 0.01]
    return max(lines) + 1.5 if lines else tube_kv


def _fit_range(energies: np.ndarray, energy_range: Sequence[float] | None, tube_kv: float
               ) -> tuple[int, int]:
    if energy_range is None:
        lo_keV, hi_keV = 1.0, tube_kv
    else:
        try:
            lo_keV, hi_keV = (float(v) for v in energy_range)
        except (TypeError, ValueError):
            raise ParameterError(
                f"energy_range must be (min_keV, max_keV), got {energy_range!r}"
            ) from None
    lo = int(np.searchsorted(energies, lo_keV))
    hi = int(np.searchsorted(energies, hi_keV, side="right"))
    if hi - lo < 16:
        raise ParameterError(
            f"energy range {lo_keV}..{hi_keV} keV holds {max(hi - lo, 0)} channels of the axis "
            f"{energies[0]:.2f}..{energies[-1]:.2f} keV (need at least 16)"
        )
    return lo, hi


def _peak_fwhm6(energies: np.ndarray, spectrum: np.ndarray, exclude_keV: Sequence[float]
                ) -> float | None:
    """Detector FWHM at 5.9 keV from the widths of the strongest isolated peaks."""
    y = np.asarray(spectrum, dtype=float)
    if y.size < 8 or not np.any(y > 0):
        return None
    gain = float(np.median(np.diff(energies)))
    peaks, props = ssg.find_peaks(y, prominence=0.02 * float(np.max(y)))
    if peaks.size == 0:
        return None
    ok = (energies[peaks] > 2.0) & (energies[peaks] < 15.0)
    for ex in exclude_keV:
        ok &= np.abs(energies[peaks] - ex) > 1.0
    peaks, prom = peaks[ok], props["prominences"][ok]
    if peaks.size == 0:
        return None
    # isolated: no other found peak within 3 nominal FWHM (0.15 keV at 6 keV)
    iso = np.array([np.all((np.abs(energies[peaks] - energies[p]) > 0.45) | (peaks == p))
                    for p in peaks])
    if np.any(iso):
        peaks, prom = peaks[iso], prom[iso]
    top = peaks[np.argsort(-prom)[:3]]
    widths = ssg.peak_widths(y, top, rel_height=0.5)[0] * gain
    slope = physics.FWHM_PER_SIGMA**2 * physics.FANO_SI * physics.PAIR_ENERGY_SI_KEV
    limit = math.sqrt(slope * physics.FWHM_REFERENCE_KEV) * 1.001
    f6 = np.sqrt(np.maximum(widths**2 - slope * energies[top], 0.0) + slope * physics.FWHM_REFERENCE_KEV)
    f6 = f6[np.isfinite(f6)]
    if f6.size == 0:
        return None
    return float(np.clip(np.median(f6), limit, 1.0))


def _golden(f, lo: float, hi: float, iters: int = 18) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def estimate_fwhm(
    energies: Any,
    spectrum: Any,
    elements: Sequence[str] | None = None,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    energy_range: Sequence[float] | None = None,
) -> float:
    """Detector resolution (FWHM at 5.9 keV, keV) estimated from a (mean) spectrum.

    First the widths at half height of the strongest isolated peaks between 2 and 15 keV
    (away from the anode's scatter peaks), converted to 5.9 keV with the Fano model
    (:func:`maxrf.physics.fwhm_keV`); with ``elements``, refined by a golden-section
    search of the weighted residual of the template fit of the spectrum.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    spectrum : array_like
        ``(C,)`` spectrum (counts), e.g. the mean (sum) spectrum.
    elements : sequence of str, optional
        Elements present, for the refinement.
    anode, tube_kv, theta_deg, energy_range
        As in :func:`fit_model`.

    Returns
    -------
    float
        FWHM (keV) at 5.9 keV; 0.145 keV when no peak can be measured.
    """
    e, y = _as_spectrum_pair(energies, spectrum)
    rh = [ln.energy_keV for ln in physics.anode_lines(anode, tube_kv) if ln.rel_intensity > 0.05]
    exclude = rh + [float(physics.compton_shift(v, theta_deg)) for v in rh]
    f0 = _peak_fwhm6(e, y, exclude) or 0.145
    if not elements:
        return f0
    lo, hi = _fit_range(e, energy_range, tube_kv)
    tc = _Templates(e, lo, hi, physics.normalize_element(anode), float(tube_kv), 3)
    els = [physics.normalize_element(el) for el in elements]
    return _refine_fwhm(tc, y, els, f0, theta_deg)


def _search_weights(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return 1.0 / np.maximum(y[lo:hi], max(1e-6, 1e-4 * float(np.max(y))))


def _refine_fwhm(tc: _Templates, y: np.ndarray, els: Sequence[str], f0: float, theta: float
                 ) -> float:
    slope = physics.FWHM_PER_SIGMA**2 * physics.FANO_SI * physics.PAIR_ENERGY_SI_KEV
    limit = math.sqrt(slope * physics.FWHM_REFERENCE_KEV) * 1.01
    w = _search_weights(y, tc.lo, tc.hi)
    return float(_golden(lambda v: tc.ssr(y, w, els, v, theta), max(limit, 0.75 * f0), 1.3 * f0,
                         iters=10))


def _estimate_theta(tc: _Templates, y: np.ndarray, els: Sequence[str], fwhm6: float,
                    around: float | None = None) -> float:
    """Scattering angle (degrees) minimising the residual of the mean-spectrum fit."""
    w = _search_weights(y, tc.lo, tc.hi)

    def f(t: float) -> float:
        return tc.ssr(y, w, els, fwhm6, t)

    if around is not None:  # local refinement
        return float(_golden(f, max(0.0, around - 3.0), min(180.0, around + 3.0), iters=6))
    grid = np.arange(20.0, 170.1, 15.0)
    best = float(grid[int(np.argmin([f(t) for t in grid]))])
    return float(_golden(f, max(0.0, best - 15.0), min(180.0, best + 15.0), iters=9))


def fit_model(
    energies: Any,
    elements: Sequence[str],
    mean_spectrum: Any,
    *,
    fwhm_at_6keV: float | None = None,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float | None = None,
    energy_range: Sequence[float] | None = None,
    continuum_order: int = 3,
    pileup: bool = True,
) -> FitModel:
    """Build the fixed design of the per-pixel element fit (see the module notes).

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    elements : sequence of str
        Elements to map.
    mean_spectrum : array_like
        ``(C,)`` mean spectrum (counts per pixel): channel weights, resolution and
        scattering-angle estimates, pile-up composition.
    fwhm_at_6keV : float, optional
        Detector FWHM at 5.9 keV (keV); estimated by :func:`estimate_fwhm` when omitted.
    anode : str
        Tube anode (Rayleigh / Compton templates).
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float, optional
        Scattering angle (degrees); estimated from the mean spectrum when omitted.
    energy_range : (float, float), optional
        Fitted energies (keV); default from 1 keV to 1.5 keV above the highest line (of at
        least 1 % relative intensity) of the elements and the anode, at most ``tube_kv``.
    continuum_order : int
        Highest Legendre order multiplying the continuum template.
    pileup : bool
        Include a pile-up (sum peak) template.

    Returns
    -------
    FitModel
    """
    e, y = _as_spectrum_pair(energies, mean_spectrum)
    if isinstance(elements, str):
        elements = [elements]
    els = list(dict.fromkeys(physics.normalize_element(el) for el in elements))
    if not els:
        raise ParameterError("no elements to map")
    anode = physics.normalize_element(anode)
    tube_kv = float(tube_kv)
    if not int(continuum_order) >= 0:
        raise ParameterError(f"continuum_order must be >= 0, got {continuum_order!r}")
    if energy_range is None:
        energy_range = (1.0, min(tube_kv, _top_keV(els, anode, tube_kv)))
    lo, hi = _fit_range(e, energy_range, tube_kv)
    tc = _Templates(e, lo, hi, anode, tube_kv, int(continuum_order))
    theta = 90.0 if theta_deg is None else float(theta_deg)
    if fwhm_at_6keV is None:
        fwhm6 = estimate_fwhm(e, y, None, anode=anode, tube_kv=tube_kv, theta_deg=theta)
    else:
        fwhm6 = float(fwhm_at_6keV)
        physics.fwhm_keV(5.9, fwhm6)  # validates
    if theta_deg is None:
        theta = _estimate_theta(tc, y, els, fwhm6)
    if fwhm_at_6keV is None:
        fwhm6 = _refine_fwhm(tc, y, els, fwhm6, theta)
        if theta_deg is None:
            theta = _estimate_theta(tc, y, els, fwhm6, around=theta)
    weights = 1.0 / np.maximum(y[lo:hi], 1.0)
    pile = None
    if pileup:
        _, _, t = tc.design(els, fwhm6, theta)
        amps, _ = _wls(t, y[lo:hi], weights)
        pile = _pileup_template(e, els, amps[: len(els)], tube_kv, fwhm6)
    names, kinds, t = tc.design(els, fwhm6, theta, pile)
    constrained = np.array([k != "continuum" for k in kinds])
    return FitModel(e, lo, hi, names, kinds, t, weights, constrained, els, float(fwhm6),
                    float(theta), anode, tube_kv)


# =========================================================================== windows
def _line_groups(element: str, tube_kv: float, min_keV: float) -> list[dict[str, Any]]:
    """Line groups (Ka, Kb, La, Lb, Lg, Ma...) of an element: strongest line, total rel."""
    groups: dict[str, list[physics.Line]] = {}
    for ln in physics.element_lines(element, tube_kv, min_keV=min_keV):
        key = ln.siegbahn[:2]
        groups.setdefault(key, []).append(ln)
    out = []
    for key, lines in groups.items():
        main = max(lines, key=lambda ln: ln.rel_intensity)
        out.append({"line": key, "keV": main.energy_keV, "rel": sum(ln.rel_intensity for ln in lines),
                    "lines": lines})
    out.sort(key=lambda g: -g["rel"])
    return out


def window_lines(
    elements: Sequence[str],
    energies: Any,
    *,
    fwhm_at_6keV: float = 0.145,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    energy_range: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """The integration window of each element for ``method='window'`` (rule: module notes).

    Parameters
    ----------
    elements : sequence of str
        Elements to map (each one's windows avoid the lines of the others).
    energies : array_like
        ``(C,)`` channel energies (keV).
    fwhm_at_6keV, anode, tube_kv, theta_deg, energy_range
        Detector resolution (keV), instrument, fitted range as in :func:`fit_model`.

    Returns
    -------
    list of dict
        Per element: ``element``, ``line`` (group, e.g. ``'Kb'``), ``keV`` (centre),
        ``keV_range`` [lo, hi], ``channels`` [left, right] (inclusive), ``free`` (bool),
        ``interference`` (relative).
    """
    e = np.asarray(energies, dtype=float)
    els = list(dict.fromkeys(physics.normalize_element(el) for el in elements))
    lo, hi = _fit_range(e, energy_range, tube_kv)
    e_lo, e_hi = e[lo], e[hi - 1]
    others_all: dict[str, list[tuple[float, float]]] = {}
    for el in els:
        lines = physics.element_lines(el, tube_kv, min_keV=0.0)
        others_all[el] = [(ln.energy_keV, ln.rel_intensity) for ln in lines]
    scatter = []
    for ln in physics.anode_lines(anode, tube_kv):
        scatter.append((ln.energy_keV, ln.rel_intensity))
        scatter.append((float(physics.compton_shift(ln.energy_keV, theta_deg)), ln.rel_intensity))
    out = []
    for el in els:
        groups = [g for g in _line_groups(el, tube_kv, 0.0) if e_lo <= g["keV"] <= e_hi]
        if not groups:
            raise ParameterError(f"element {el} has no line in the range {e_lo:.2f}..{e_hi:.2f} keV")
        top = groups[0]["rel"]
        interferers = [ln for other in els if other != el for ln in others_all[other]] + scatter
        best = None
        for g in groups:
            fw = float(physics.fwhm_keV(g["keV"], fwhm_at_6keV))
            near = [(ek, rel) for ek, rel in interferers if rel >= 0.05 and abs(ek - g["keV"]) < 2 * fw]
            sigma = fw / physics.FWHM_PER_SIGMA
            a, b = g["keV"] - fw, g["keV"] + fw
            inter = sum(rel * (ndtr((b - ek) / sigma) - ndtr((a - ek) / sigma))
                        for ek, rel in interferers)
            own = sum(ln.rel_intensity
                      * (ndtr((b - ln.energy_keV) / sigma) - ndtr((a - ln.energy_keV) / sigma))
                      for ln in g["lines"])
            cand = {"group": g, "free": not near, "interference": float(inter / max(own, 1e-12)),
                    "fwhm": fw}
            if cand["free"] and g["rel"] >= 0.1 * top:
                best = cand
                break
            if best is None or cand["interference"] < best["interference"]:
                best = cand
        g = best["group"]
        fw = best["fwhm"]
        si = int(_nearest_index(e, np.array([g["keV"] - fw]))[0])
        sk = int(_nearest_index(e, np.array([g["keV"] + fw]))[0])
        if sk <= si:
            sk = min(e.size - 1, si + 1)
        out.append({"element": el, "line": g["line"], "keV": float(g["keV"]),
                    "keV_range": [float(e[si]), float(e[sk])], "channels": [si, sk],
                    "free": bool(best["free"]), "interference": best["interference"]})
    return out


# =========================================================================== results
@dataclass
class PeakMaps:
    """Peak-slice maps of a scan.

    Attributes
    ----------
    maps : numpy.ndarray or maxrf.store.LayerArray
        ``(k, H, W)`` float32 peak maps (counts per channel above the slice baseline; divided
        by each map's maximum when ``norm``). A read-on-demand view of the stored layer
        when computed with ``store=True``.
    keV_maps : numpy.ndarray
        ``(k, H, W)`` float32 energy (keV) of the per-pixel maximum in each slice.
    slices : numpy.ndarray
        ``(k, 3)`` int ``[left, peak, right]`` channels.
    peaks_xy : numpy.ndarray
        ``(k, 2)`` peak energy (keV) and height of the spectrum the slices came from.
    labels : list of str
        ``peak-07-6.40keV``...
    norm : bool
    prominence : float or None
        The prominence given (counts), or None for the data-scaled default
        (:data:`AUTO_SIGMA` x the local counting noise) or a per-channel array.
    rel_height : float
    """

    maps: np.ndarray
    keV_maps: np.ndarray
    slices: np.ndarray
    peaks_xy: np.ndarray
    labels: list[str]
    norm: bool
    prominence: float | None
    rel_height: float

    @property
    def peaks_keV(self) -> np.ndarray:
        return self.peaks_xy[:, 0] if self.peaks_xy.size else np.zeros(0)

    def __iter__(self) -> Iterator[np.ndarray]:
        """``peak_maps, keV_maps = result`` as the seed returned them."""
        return iter((self.maps, self.keV_maps))


@dataclass
class ElementMaps:
    """Element maps of a scan.

    Attributes
    ----------
    maps : numpy.ndarray or maxrf.store.LayerArray
        ``(k, H, W)`` float32 counts per pixel of each element's lines (total area); a
        read-on-demand view of the stored layer when computed with ``store=True``.
    chi2 : numpy.ndarray
        ``(H, W)`` float32 reduced chi-square of the per-pixel fit (NaN for ``'window'``).
    elements : list of str
    method : str
        ``'fit'`` or ``'window'``.
    windows : list of dict
        For ``'window'``: :func:`window_lines` entries.
    fwhm_at_6keV, theta_deg : float
        Detector resolution (keV at 5.9 keV) and scattering angle (degrees) used.
    anode : str
    tube_kv : float
    energy_range : list of float
        Fitted energies (keV).
    components : list of str
        Fit components (``'fit'``).
    refined_fraction : float
        Share of the pixels whose amplitudes the non-negativity refinement changed.
    """

    maps: np.ndarray
    chi2: np.ndarray
    elements: list[str]
    method: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    fwhm_at_6keV: float = float("nan")
    theta_deg: float = float("nan")
    anode: str = "Rh"
    tube_kv: float = 40.0
    energy_range: list[float] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    refined_fraction: float = 0.0

    def __getitem__(self, element: str) -> np.ndarray:
        """The map of one element (``maps['Fe']``)."""
        try:
            return self.maps[self.elements.index(physics.normalize_element(element))]
        except ValueError:
            raise KeyError(element) from None

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{element: (H, W) map}``."""
        return {el: self.maps[i] for i, el in enumerate(self.elements)}

    def attrs(self) -> dict[str, Any]:
        """Layer attributes (JSON-safe)."""
        return {
            "elements": list(self.elements), "method": self.method, "windows": self.windows,
            "fwhm_at_6keV": float(self.fwhm_at_6keV), "theta_deg": float(self.theta_deg),
            "anode": self.anode, "tube_kv": float(self.tube_kv),
            "energy_range": [float(v) for v in self.energy_range],
            "components": list(self.components), "refined_fraction": float(self.refined_fraction),
            "units": "counts per pixel (total area of the element's lines)",
        }


@dataclass
class MapsResult:
    """What :func:`compute_maps` returns: either part may be None."""

    peaks: PeakMaps | None = None
    elements: ElementMaps | None = None
    seconds: float = 0.0
    merge: Any = None
    """With ``store=True`` and elements: the :class:`maxrf.runs.MergeReport`."""


# =========================================================================== main entry
def _instrument(inp: _Input, anode: str | None, tube_kv: float | None, theta_deg: float | None
                ) -> tuple[str, float, float | None]:
    cal = inp.datastack.calibration if inp.datastack is not None else None
    cal = cal or {}
    anode = anode or cal.get("anode") or "Rh"
    tube_kv = tube_kv if tube_kv is not None else (cal.get("tube_kv") or 40.0)
    if theta_deg is None and cal.get("theta_deg") is not None:
        theta_deg = float(cal["theta_deg"])
    return str(anode), float(tube_kv), theta_deg


def _check_elements(elements: Any) -> list[str]:
    if isinstance(elements, str):
        elements = [s for s in elements.replace(",", " ").split() if s]
    out = list(dict.fromkeys(physics.normalize_element(el) for el in elements))
    if not out:
        raise ParameterError("no elements given to map")
    return out


def compute_maps(
    ds: Any,
    peaks: bool = True,
    elements: Sequence[str] | None = None,
    method: str = "fit",
    *,
    x_keVs: Any = None,
    y_max: Any = None,
    prominence: float | None = None,
    rel_height: float = 0.2,
    norm: bool = False,
    fwhm_at_6keV: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    theta_deg: float | None = None,
    energy_range: Sequence[float] | None = None,
    continuum_order: int = 3,
    nonneg: bool = True,
    client: Any = None,
    progress: bool = False,
    store: bool = False,
) -> MapsResult:
    """Peak maps and element maps together, in ONE pass over the cube.

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan; a bare ``(H, W, C)`` cube needs ``x_keVs``.
    peaks : bool
        Compute the peak-slice maps of the max spectrum (:func:`get_peakmaps`).
    elements : sequence of str, optional
        Elements to map (:func:`element_maps`); None for none.
    method : {'fit', 'window'}
        Element-map method.
    x_keVs : array_like, optional
        ``(C,)`` channel energies (keV); default the store's calibration.
    y_max : array_like, optional
        ``(C,)`` spectrum to slice; default the max spectrum.
    prominence : float, optional
        Minimum prominence (counts) of the sliced max-spectrum peaks. Default: data-scaled,
        :data:`AUTO_SIGMA` standard deviations of the local counting noise (as the hotmax
        atlas), which keeps the real peaks and none of the noise wiggles of raw counts;
        :func:`get_peakmaps` keeps the seed's 0.5.
    rel_height : float
        Peak width height for the slices (:func:`get_slices`).
    norm : bool
        Divide each peak map by its maximum (the seed's default in :func:`get_peakmaps`).
    fwhm_at_6keV : float, optional
        Detector FWHM at 5.9 keV (keV); estimated from the mean spectrum by default.
    anode, tube_kv, theta_deg : optional
        Instrument; default from the calibration layer, else Rh, 40 kV, theta estimated.
    energy_range : (float, float), optional
        Fitted energies (keV); default see :func:`fit_model` (windows: 1 keV .. tube_kv).
    continuum_order : int
        Legendre order of the continuum correction.
    nonneg : bool
        Non-negative element/scatter amplitudes (active-set NNLS); else unconstrained.
    client : dask.distributed.Client, optional
        Run on this cluster (default local threads or ``MAXRF_SCHEDULER``).
    progress : bool
        Progress bar on standard error.
    store : bool
        Write the ``peak_maps`` / ``element_maps`` layers (DataStack input only). The maps
        are then streamed into the store band by band as the pass produces them (both
        layers committed together at the end, atomically), so memory stays bounded
        whatever the number of maps and pixels; the result's ``maps``, ``keV_maps`` and
        ``chi2`` are :class:`maxrf.store.LayerArray` views of the stored layers, read on
        demand (``maps[i]`` reads one map, ``numpy.asarray(maps)`` all of them).

    Returns
    -------
    MapsResult
    """
    if method not in ("fit", "window"):
        raise ParameterError(f"method must be 'fit' or 'window', got {method!r}")
    els = _check_elements(elements) if elements is not None else []
    if not peaks and not els:
        raise ParameterError("nothing to compute: ask for peaks and/or elements")
    inp = _open_input(ds, need_energies=x_keVs is None)
    e = inp.require_energies(x_keVs)
    reductions: dict[str, PixelMaps] = {}
    peak_info = None
    if peaks:
        y = inp.get_max(y_max)
        shared = None
        if prominence is None:  # the default: hotmax's peak list (near-duplicates merged)
            from maxrf.peaklist import max_spectrum_peaks

            shared, _ = max_spectrum_peaks(y, n_sigma=AUTO_SIGMA)
        peaks_xy, slices = get_slices(e, y, prominence=prominence, rel_height=rel_height,
                                      peaks=shared)
        peak_info = (peaks_xy, slices)
        reductions["peaks"] = PeakSliceMaps(slices, e)
    elem_info: dict[str, Any] = {}
    if els:
        anode_, kv, theta = _instrument(inp, anode, tube_kv, theta_deg)
        mean = inp.get_mean()
        if method == "fit":
            model = fit_model(e, els, mean, fwhm_at_6keV=fwhm_at_6keV, anode=anode_, tube_kv=kv,
                              theta_deg=theta, energy_range=energy_range,
                              continuum_order=continuum_order)
            reductions["elements"] = ElementFit(model, nonneg=nonneg)
            elem_info = {"model": model}
        else:
            lo, hi = _fit_range(e, energy_range, kv)
            fwhm6 = fwhm_at_6keV
            if fwhm6 is None:
                fwhm6 = estimate_fwhm(e, mean, None, anode=anode_, tube_kv=kv,
                                      theta_deg=90.0 if theta is None else theta)
            if theta is None:
                tc = _Templates(e, lo, hi, physics.normalize_element(anode_), kv, 3)
                theta = _estimate_theta(tc, mean, els, fwhm6)
            wins = window_lines(els, e, fwhm_at_6keV=fwhm6, anode=anode_, tube_kv=kv,
                                theta_deg=theta, energy_range=energy_range)
            wslices = np.array([[w["channels"][0], w["channels"][0], w["channels"][1]] for w in wins])
            response = []
            for w, el in zip(wins, els):
                t = physics.element_spectrum(el, e, tube_kv=kv, fwhm_at_6keV=fwhm6)
                si, sk = w["channels"]
                response.append(float(seed_peak_map(t[si : sk + 1]) * (sk - si)))
            reductions["windows"] = PeakSliceMaps(wslices, e, kev_maps=False)
            elem_info = {"windows": wins, "response": np.array(response), "fwhm6": fwhm6,
                         "theta": theta, "anode": anode_, "tube_kv": kv, "range": (e[lo], e[hi - 1])}
    if store and inp.datastack is None:
        raise ParameterError("store=True needs a DataStack, not a bare cube")
    t0 = time.perf_counter()
    if store:
        from maxrf import runs  # element maps accumulate by element (a new Fe map replaces Fe only)

        run, kept = runs.now(), runs.keep_previous(inp.datastack, els) if els else None
        result = _compute_stored(inp, reductions, e, peak_info, elem_info, els, method,
                                 norm=norm, prominence=prominence, rel_height=rel_height,
                                 client=client, progress=progress, kept=kept, run=run)
        if kept is not None:
            result.merge = runs.report(els, kept, run)
        result.seconds = time.perf_counter() - t0
        return result
    out = _run(inp, reductions, client, progress, "maps")
    result = MapsResult(seconds=time.perf_counter() - t0)
    h, w = inp.shape[:2]
    if peaks:
        peaks_xy, slices = peak_info
        k = slices.shape[0]
        arr = out["peaks"]
        maps = arr[:k]
        if norm:  # the engine's output is ours: no copy of k x H x W maps
            maps = _normalise(maps, copy=False)
        result.peaks = PeakMaps(maps, arr[k:], slices, peaks_xy, peak_labels(peaks_xy[:, 0]),
                                bool(norm), _prominence_value(prominence), float(rel_height))
    if els and method == "fit":
        arr = out["elements"]
        k = len(els)
        result.elements = _fit_result(elem_info["model"], e, els, arr[:k], arr[k],
                                      float(arr[k + 1].mean()))
    elif els:
        arr = out["windows"]
        arr *= _window_scale(elem_info)[:, None, None]
        result.elements = _window_result(elem_info, els, arr,
                                         np.full((h, w), np.nan, dtype=np.float32))
    return result


def _fit_result(model: FitModel, e: np.ndarray, els: list[str], maps: Any, chi2: Any,
                refined_fraction: float) -> ElementMaps:
    return ElementMaps(
        maps=maps, chi2=chi2, elements=els, method="fit",
        fwhm_at_6keV=model.fwhm_at_6keV, theta_deg=model.theta_deg, anode=model.anode,
        tube_kv=model.tube_kv, energy_range=[float(e[model.lo]), float(e[model.hi - 1])],
        components=list(model.names), refined_fraction=float(refined_fraction),
    )


def _window_scale(info: Mapping[str, Any]) -> np.ndarray:
    """Per element: window width over the template's response (float32): counts per pixel."""
    d = np.array([w["channels"][1] - w["channels"][0] for w in info["windows"]], float)
    return (d / info["response"]).astype(np.float32)


def _window_result(info: Mapping[str, Any], els: list[str], maps: Any, chi2: Any) -> ElementMaps:
    return ElementMaps(
        maps=maps, chi2=chi2, elements=els, method="window", windows=info["windows"],
        fwhm_at_6keV=float(info["fwhm6"]), theta_deg=float(info["theta"]), anode=info["anode"],
        tube_kv=float(info["tube_kv"]), energy_range=[float(v) for v in info["range"]],
    )


def _compute_stored(inp: _Input, reductions: Mapping[str, PixelMaps], e: np.ndarray,
                    peak_info: Any, elem_info: Mapping[str, Any], els: list[str], method: str,
                    *, norm: bool, prominence: float, rel_height: float, client: Any,
                    progress: bool, kept: Any = None, run: str = "") -> MapsResult:
    """The pass with its maps streamed into the new layers band by band (never k x H x W in
    memory), both layers committed together at the end; the result reads them back lazily."""
    from maxrf.store import LayerWriter

    ds = inp.datastack
    h, w = inp.shape[:2]
    whole = (slice(None),)
    outputs: dict[str, engine.BandedMaps] = {}
    with LayerWriter(ds.path) as lw:

        def banded(name: str, n_rows: int, flush: Any) -> tuple[int, tuple[int, int, int]]:
            rows = engine.band_rows((h, w), n_rows, ds.chunks[0])
            outputs[name] = engine.BandedMaps((h, w), rows, flush)
            return rows, (1, rows, w)

        if "peaks" in reductions:
            peaks_xy, slices = peak_info
            kp = slices.shape[0]
            rows_p, chunks = banded("peaks", 2 * kp, lambda r, b: flush_peaks(r, b))
            pmaps = lw.create("peak_maps", "maps", (kp, h, w), np.float32, chunks)
            pkev = lw.create("peak_maps", "keV_maps", (kp, h, w), np.float32, chunks)
            peak_max = np.full(kp, np.nan, dtype=np.float32)

            def flush_peaks(rows: slice, band: np.ndarray) -> None:
                lw.write(pmaps, (*whole, rows), band[:kp])
                lw.write(pkev, (*whole, rows), band[kp:])
                if kp:
                    peak_max[:] = np.fmax(peak_max, np.fmax.reduce(band[:kp].reshape(kp, -1), axis=1))

        if els:
            ke = len(els)
            fit = method == "fit"
            scale = None if fit else _window_scale(elem_info)
            name = "elements" if fit else "windows"
            _, chunks = banded(name, ke + 2, lambda r, b: flush_elements(r, b))
            n_kept = len(kept.maps) if kept is not None else 0  # earlier runs' maps, kept
            emaps = lw.create("element_maps", "maps", (ke + n_kept, h, w), np.float32, chunks)
            for j in range(n_kept):
                lw.write(emaps, (slice(ke + j, ke + j + 1),), kept.maps[j][None])
            echi2 = lw.create("element_maps", "chi2", (h, w), np.float32, chunks[1:])
            refined = [0.0]

            def flush_elements(rows: slice, band: np.ndarray) -> None:
                if fit:
                    lw.write(emaps, (slice(0, ke), rows), band[:ke])
                    lw.write(echi2, (rows,), band[ke])
                    refined[0] += float(band[ke + 1].sum(dtype=np.float64))
                else:
                    lw.write(emaps, (slice(0, ke), rows), band * scale[:, None, None])
                    lw.write(echi2, (rows,), np.full(band.shape[1:], np.nan, np.float32))

        _run(inp, reductions, client, progress, "maps", outputs=outputs)
        attrs: dict[str, Any] = {}
        if "peaks" in reductions:
            if norm:  # a second pass over the stored maps (not the cube), band by band
                for r0 in range(0, h, rows_p):
                    rows = slice(r0, min(r0 + rows_p, h))
                    band = pmaps[:, rows, :]
                    for i in range(kp):
                        if peak_max[i] > 0:
                            band[i] /= peak_max[i]
                    lw.write(pmaps, (*whole, rows), band)
            meta = PeakMaps(None, None, slices, peaks_xy, peak_labels(peaks_xy[:, 0]),
                            bool(norm), _prominence_value(prominence), float(rel_height))
            for key, value in _peak_small_arrays(meta).items():
                lw.put("peak_maps", key, value)
            attrs["peak_maps"] = _peak_attrs(meta)
        if els:
            fraction = refined[0] / (h * w) if h * w else 0.0
            if method == "fit":
                em = _fit_result(elem_info["model"], e, els, None, None, fraction)
            else:
                em = _window_result(elem_info, els, None, None)
            attrs["element_maps"] = em.attrs()
            if kept is not None:
                from maxrf import runs

                attrs["element_maps"] = runs.merged_attrs(attrs["element_maps"], kept, run)
        lw.commit(attrs)
    result = MapsResult()
    if "peaks" in reductions:
        layer = ds.read("peak_maps", lazy=True)
        meta.maps, meta.keV_maps = layer["maps"], layer["keV_maps"]
        result.peaks = meta
    if els:
        layer = ds.read("element_maps", lazy=True)
        em.maps, em.chi2 = layer["maps"], layer["chi2"]
        if kept is not None and kept.maps:  # this run's maps only; the kept ones follow
            from maxrf import runs

            em.maps = runs.HeadMaps(layer["maps"], len(els))
        result.elements = em
    return result


def _normalise(maps: np.ndarray, copy: bool = True) -> np.ndarray:
    """Divide each map by its maximum (seed's ``norm``); in place when ``copy`` is False."""
    out = maps.astype(np.float32, copy=copy)
    for i in range(out.shape[0]):
        mx = np.nanmax(out[i]) if out[i].size else 0.0
        if mx > 0:
            out[i] /= mx
    return out


def get_peakmaps(
    ds: Any,
    x_keVs: Any = None,
    y_max: Any = None,
    prominence: float = 0.5,
    rel_height: float = 0.2,
    norm: bool = True,
    *,
    client: Any = None,
    progress: bool = False,
    store: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the peak slices of the max spectrum into peak maps and keV maps (one pass).

    The seed's ``get_peakmaps(arr, x_calib, y_max)`` read the cube once per peak; this
    reads it once. Formula (kept exactly): for slice ``si .. sk`` (inclusive),
    ``d = sk - si``, ``peak_map = sum(slice) / d - (x[si] + x[sk]) / 2``.

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan (a bare ``(H, W, C)`` cube as in the seed needs ``x_keVs``).
    x_keVs : array_like, optional
        ``(C,)`` channel energies (keV); default ``ds.energies``.
    y_max : array_like, optional
        ``(C,)`` spectrum to slice; default ``ds.max_spectrum`` (for a bare cube its max
        over the pixels, one extra pass).
    prominence, rel_height : float
        See :func:`get_slices`.
    norm : bool
        Divide each peak map by its maximum (seed default; maps whose maximum is not
        positive are left as they are).
    client : dask.distributed.Client, optional
        Run on this cluster.
    progress : bool
        Progress bar.
    store : bool
        Also write the ``peak_maps`` layer (DataStack input only); the maps are then
        streamed to the store and returned as read-on-demand views of it (see
        :func:`compute_maps`).

    Returns
    -------
    peak_maps : numpy.ndarray
        ``(k, H, W)`` float32 (counts per channel, or relative with ``norm``).
    keV_maps : numpy.ndarray
        ``(k, H, W)`` float32 energy (keV) of the per-pixel slice maximum.
    """
    if y_max is None and hasattr(ds, "max_spectrum") and callable(ds.max_spectrum):
        y_max = ds.max_spectrum()  # as the seed's call: the smoothed max spectrum where stored
    res = compute_maps(ds, peaks=True, elements=None, x_keVs=x_keVs, y_max=y_max,
                       prominence=prominence, rel_height=rel_height, norm=norm, client=client,
                       progress=progress, store=store)
    peaks = res.peaks
    return peaks.maps, res.peaks.keV_maps


def element_maps(
    ds: Any,
    elements: Sequence[str],
    method: str = "fit",
    *,
    x_keVs: Any = None,
    fwhm_at_6keV: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    theta_deg: float | None = None,
    energy_range: Sequence[float] | None = None,
    continuum_order: int = 3,
    nonneg: bool = True,
    client: Any = None,
    progress: bool = False,
    store: bool = False,
) -> ElementMaps:
    """Element maps (counts per pixel of each element's lines) in one pass over the cube.

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan (a bare cube needs ``x_keVs``; its mean spectrum costs one extra pass).
    elements : sequence of str
        Elements to map (symbols, any case; or ``'Fe,Cu'``).
    method : {'fit', 'window'}
        Per-pixel template fit (default) or line-window integration (module notes).
    x_keVs, fwhm_at_6keV, anode, tube_kv, theta_deg, energy_range, continuum_order, nonneg,
    client, progress, store
        See :func:`compute_maps`.

    Returns
    -------
    ElementMaps
        ``.maps`` (k, H, W) float32 counts, ``.chi2`` (H, W), ``.elements``; ``em['Fe']``.
    """
    res = compute_maps(ds, peaks=False, elements=elements, method=method, x_keVs=x_keVs,
                       fwhm_at_6keV=fwhm_at_6keV, anode=anode, tube_kv=tube_kv,
                       theta_deg=theta_deg, energy_range=energy_range,
                       continuum_order=continuum_order, nonneg=nonneg, client=client,
                       progress=progress, store=store)
    return res.elements  # type: ignore[return-value]


# =========================================================================== storage
def _peak_small_arrays(peaks: PeakMaps) -> dict[str, np.ndarray]:
    return {"slices": np.asarray(peaks.slices, dtype=np.int64).reshape(-1, 3),
            "peaks_keV": np.asarray(peaks.peaks_keV, dtype=np.float64),
            "peaks_height": np.asarray(peaks.peaks_xy[:, 1] if peaks.peaks_xy.size else [], float)}


def _prominence_value(prominence: Any) -> float | None:
    return None if prominence is None or np.ndim(prominence) else float(prominence)


def _peak_attrs(peaks: PeakMaps) -> dict[str, Any]:
    rule = (f"{AUTO_SIGMA:g} x the local counting noise of the max spectrum"
            if peaks.prominence is None else f"{peaks.prominence:g} counts")
    return {"labels": list(peaks.labels), "norm": bool(peaks.norm),
            "prominence": peaks.prominence, "prominence_rule": rule,
            "rel_height": float(peaks.rel_height),
            "formula": "sum(x[si:sk+1])/(sk-si) - (x[si]+x[sk])/2",
            "units": "relative (map / max)" if peaks.norm else "counts per channel"}


def write_peak_maps(ds: Any, peaks: PeakMaps) -> None:
    """Write the ``peak_maps`` layer (schema in docs/ARCHITECTURE.md)."""
    ds.write_layer(
        "peak_maps",
        {"maps": np.asarray(peaks.maps, dtype=np.float32),
         "keV_maps": np.asarray(peaks.keV_maps, dtype=np.float32),
         **_peak_small_arrays(peaks)},
        _peak_attrs(peaks),
    )


def write_element_maps(ds: Any, em: ElementMaps) -> None:
    """Write the ``element_maps`` layer (schema in docs/ARCHITECTURE.md)."""
    ds.write_layer("element_maps",
                   {"maps": np.asarray(em.maps, dtype=np.float32),
                    "chi2": np.asarray(em.chi2, dtype=np.float32)},
                   em.attrs())


def identified_elements(ds: Any) -> list[str]:
    """Elements with status ``'present'`` in the ``identification`` layer.

    Raises
    ------
    LayerMissingError
        If the scan has not been identified (run ``maxrf identify`` first).
    """
    if "identification" not in ds.layers:
        raise LayerMissingError(
            "no 'identification' layer: run 'maxrf identify' first (or give --elements Fe,Cu,...)",
            ds.path,
        )
    attrs = ds.read("identification").attrs
    out = []
    for entry in attrs.get("elements", []):
        if isinstance(entry, Mapping) and entry.get("status") == "present" and entry.get("element"):
            out.append(physics.normalize_element(entry["element"]))
    return list(dict.fromkeys(out))


# =========================================================================== small helpers
def get_noise_level(peak_map: Any, noise_frac: float = 0.5) -> tuple[float, np.ndarray]:
    """Noise level of a peak map estimated from its negative values (seed code).

    The cumulative distribution of the negative values (``scipy.stats.cumfreq``, 10 bins)
    is turned into the share of negative pixels below each level; the level where that
    share is closest to ``noise_frac`` gives the noise level (its absolute value).

    Parameters
    ----------
    peak_map : array_like
        ``(H, W)`` peak map (map units).
    noise_frac : float
        Share of the negative pixels (0..1).

    Returns
    -------
    noise_level : float
        Positive noise level (map units); 0 when the map has no negative value.
    is_negative : numpy.ndarray
        ``(H, W)`` bool mask of the negative pixels.
    """
    import scipy.stats as sstats

    pm = np.asarray(peak_map, dtype=float)
    is_negative = pm < 0
    if not np.any(is_negative):
        return 0.0, is_negative
    res = sstats.cumfreq(pm[is_negative], numbins=10)
    bins = res.lowerlimit + np.linspace(0, res.binsize * res.cumcount.size, res.cumcount.size)
    hist = 1 - res.cumcount / res.cumcount.max()
    level_i = int(np.argmin((hist - noise_frac) ** 2))
    return float(-bins[level_i]), is_negative


def histeq(img: Any, nbins: int = 256) -> np.ndarray:
    """Histogram equalisation (``skimage.exposure.equalize_hist``) that ignores NaN / inf.

    Parameters
    ----------
    img : array_like
        Image (any units).
    nbins : int
        Histogram bins.

    Returns
    -------
    numpy.ndarray
        float64 image in 0..1; non-finite pixels stay NaN.
    """
    from skimage.exposure import equalize_hist

    a = np.asarray(img, dtype=float)
    out = np.full(a.shape, np.nan)
    ok = np.isfinite(a)
    if np.any(ok):
        vals = a[ok]
        if np.ptp(vals) == 0:
            out[ok] = 1.0
        else:
            out[ok] = equalize_hist(vals, nbins=nbins)
    return out


def sum_image(
    ds: Any,
    min_keV: float = 1.0,
    *,
    x_keVs: Any = None,
    client: Any = None,
    progress: bool = False,
) -> np.ndarray:
    """Counts per pixel summed over the channels at or above ``min_keV`` (one pass).

    For registration with photographs (the seed's ``cube[:, :, 100:].sum(axis=2)``).

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan (a bare cube needs ``x_keVs``).
    min_keV : float
        Lowest energy summed (keV).
    x_keVs : array_like, optional
        Channel energies (keV) for a bare cube.
    client, progress
        See :func:`compute_maps`.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 counts.
    """
    inp = _open_input(ds, need_energies=x_keVs is None)
    e = inp.require_energies(x_keVs)
    lo = int(np.searchsorted(e, float(min_keV)))
    out = _run(inp, {"sum": SumImage(lo)}, client, progress, "sum image")
    return out["sum"][0]
