"""Cubic B-spline sampling of photo channels at scattered points (compiled, numba).

The colour fit (:class:`maxrf.registration.auto.FitMetric`) samples three photo channels
at ten to twenty thousand scan pixel centres for each of thousands of trial matrices;
that sampling was most of a registration's time. ``scipy.ndimage.map_coordinates`` walks
each channel separately (three trips to scattered places of a 10-40 MB image) and holds
the GIL. Here the channels' spline coefficients are stored interleaved, ``(h, w, k)``, so
one point's 4 x 4 neighbourhood serves every channel from the same cache lines, the
weights are computed once per point, and large point sets are spread over threads (the
kernel releases the GIL, so callers may run several fits in threads).

Values equal ``map_coordinates(c, [y, x], order=3, mode='nearest', prefilter=False)`` for
each channel ``c`` (the coefficients beyond the edge are the edge's: 'nearest' extension of
the coefficients, as scipy does for points inside the image).
"""

from __future__ import annotations

import threading

import numba
import numpy as np

__all__ = ["interleave", "sample_cubic"]

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "fastmath": True}


def interleave(coeffs: np.ndarray) -> np.ndarray:
    """``(k, h, w)`` spline coefficients -> ``(h, w, k)`` float32, C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(coeffs, dtype=np.float32), 0, -1))


@numba.njit(inline="always", **_JIT)
def _tap(d):  # pragma: no cover - compiled
    """Cubic B-spline weight of a tap at distance ``d`` (pixels) from the point."""
    d = abs(d)
    if d < 1.0:
        return (4.0 - 6.0 * d * d + 3.0 * d * d * d) / 6.0
    if d < 2.0:
        e = 2.0 - d
        return e * e * e / 6.0
    return 0.0


@numba.njit(**_JIT)
def _sample_range(coef, x, y, out, start, stop):  # pragma: no cover - compiled
    h, w, k = coef.shape
    for p in range(start, stop):
        xf = np.floor(x[p])
        yf = np.floor(y[p])
        tx = x[p] - xf
        ty = y[p] - yf
        ix = int(xf) - 1
        iy = int(yf) - 1
        wx0, wx1, wx2, wx3 = _tap(tx + 1.0), _tap(tx), _tap(1.0 - tx), _tap(2.0 - tx)
        for c in range(k):
            out[p, c] = 0.0
        for a in range(4):
            r = min(max(iy + a, 0), h - 1)
            wy = _tap(ty + 1.0 - a)
            q0 = min(max(ix, 0), w - 1)
            q1 = min(max(ix + 1, 0), w - 1)
            q2 = min(max(ix + 2, 0), w - 1)
            q3 = min(max(ix + 3, 0), w - 1)
            for c in range(k):
                out[p, c] += wy * (wx0 * coef[r, q0, c] + wx1 * coef[r, q1, c]
                                   + wx2 * coef[r, q2, c] + wx3 * coef[r, q3, c])


@numba.njit(parallel=True, **_JIT)
def _sample(coef, x, y, out, chunks):  # pragma: no cover - compiled
    n = x.shape[0]
    step = (n + chunks - 1) // chunks
    for i in numba.prange(chunks):
        _sample_range(coef, x, y, out, i * step, min(n, (i + 1) * step))


#: fewest points per thread for :func:`sample_cubic` to spread them over threads. The
#: colour fit samples at most 20,000 (``auto._MAX_SAMPLES``) per call: on two idle cores
#: two threads took 0.76 ms against 0.92 ms for 13,000 points, but with the other core
#: busy (another process, a test worker) 2.8 ms against 1.4, and the OpenMP team's
#: waiting threads spin on the busy core (CPU 3.2 ms against 1.5). Only from some
#: 100,000 points do threads gain on idle cores (5.7 ms against 8.4)
PARALLEL_MIN_POINTS = 50_000


def sample_cubic(coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Every channel of interleaved coefficients at points ``(x, y)`` (pixels, centres at integers).

    Parameters
    ----------
    coef : numpy.ndarray
        ``(h, w, k)`` float32 cubic B-spline coefficients (:func:`interleave`).
    x, y : numpy.ndarray
        ``(n,)`` column and row coordinates (pixels). Points outside ``[0, w-1] x [0, h-1]``
        are clamped to the edge's coefficients (their values are not meaningful).

    Returns
    -------
    numpy.ndarray
        ``(n, k)`` float64 values.
    """
    xs = np.clip(np.asarray(x, dtype=np.float64), -2.0, coef.shape[1] + 1.0)
    ys = np.clip(np.asarray(y, dtype=np.float64), -2.0, coef.shape[0] + 1.0)
    out = np.empty((len(xs), coef.shape[2]), dtype=np.float64)
    chunks = max(1, min(numba.get_num_threads(), len(xs) // PARALLEL_MIN_POINTS))
    if chunks > 1 and threading.current_thread() is threading.main_thread():
        _sample(coef, xs, ys, out, chunks)
    else:
        # one chunk: callers running fits in threads already use the cores (no nested
        # thread teams), and below PARALLEL_MIN_POINTS a thread team costs more than it saves
        _sample_range(coef, xs, ys, out, 0, len(xs))
    return out
