"""Display helpers for maps: noise level, histogram equalisation."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike


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


def histeq(img: ArrayLike, nbins: int = 256) -> np.ndarray:
    """Histogram equalisation that ignores NaN / inf: the one used by plots, report, viewer.

    Each finite pixel becomes the share of the finite pixels whose value falls in its
    histogram bin or below (the empirical cumulative distribution,
    ``skimage.exposure.equalize_hist``, as the seed): the median pixel is about 0.5, the
    largest 1.0, the smallest the share of its bin. A constant map carries no contrast and
    is 1.0 everywhere by the same rule (every pixel is at or below its value; skimage's
    degenerate histogram would give 0.5, the report's former equalisation 0.0).

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
