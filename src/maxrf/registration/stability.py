"""Stability of a registration: refits on parts of the scan area must agree with it.

Part of the scanned area may be hidden or altered in the photo (a grey card, a label,
glare, a frame's edge). The least-squares colour fit then bends the projective warp
towards what it cannot explain there, and the local check (:mod:`local_check`), which
fits windows to the colours the whole (bent) fit predicts, agrees with the bent warp. A
refit that leaves out the part where the photo disagrees is not pulled; a refit that
leaves out any other part is pulled the same way as the whole fit. So the projective stage
is fitted again from the result on the scan area without each quadrant in turn: if every
refit lands where the whole fit did (within a few tenths of a scan pixel), no part of the
scan drives the result; if one moves away, the result depends on that part, and it is not
trusted.

A refit can also move because the kept area alone constrains the warp poorly (little
structure in three quadrants): then it fits the kept area hardly better than the result.
So a refit counts only when its gain on the kept area is significant: ``N_eff (R^2_refit -
R^2_result) / (1 - R^2_refit)``, about chi-square with 8 degrees of freedom (the corner
modes) when the result is right, with ``N_eff`` the kept pixels over the correlation area
of the residuals (:data:`maxrf.registration.local_check.CORRELATION_AREA`). Clean synthetic
photos give 1-18; a card over a corner of the scan 50-400. The evidence is the largest
displacement (scan pixels) over the scan area between the result and a significant refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maxrf.io.photo import Photo
from maxrf.registration import auto
from maxrf.registration import homography as hg
from maxrf.registration.local_check import CORRELATION_AREA

__all__ = ["SIGNIFICANT", "Stability", "stability"]

#: gain statistic above which a refit counts (chi-square, 8 degrees of freedom: p < 0.001)
SIGNIFICANT = 30.0


@dataclass
class Stability:
    """Refits of the projective stage without each part of the scan area.

    Attributes
    ----------
    parts : list of str
        The parts left out, e.g. ``'top-left'``.
    matrices : list of numpy.ndarray
        The refit matrices (scan -> photo pixels), one per part.
    shifts : numpy.ndarray
        ``(k,)`` largest displacement (scan pixels) over the scan area between each refit
        and the judged matrix.
    gains : numpy.ndarray
        ``(k,)`` each refit's gain statistic on its kept area (see the module doc).
    max_shift : float
        The largest of ``shifts`` among the refits whose gain exceeds :data:`SIGNIFICANT`,
        0 if none (scan pixels).
    """

    parts: list[str]
    matrices: list[np.ndarray]
    shifts: np.ndarray
    gains: np.ndarray
    max_shift: float


def displacement(matrix: np.ndarray, other: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest distance (scan pixels) between where two warps send the scan's pixel centres."""
    g = hg.scan_grid(shape)
    back = hg.apply(np.linalg.inv(matrix), hg.apply(other, g))
    return float(np.linalg.norm(back - g, axis=1).max())


def _parts(shape: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """Masks that keep the scan area without one quadrant each."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    top, left = rows < h / 2, cols < w / 2
    out = []
    for name, quad in (("top-left", top & left), ("top-right", top & ~left),
                       ("bottom-left", ~top & left), ("bottom-right", ~top & ~left)):
        out.append((name, ~quad))
    return out


def stability(scan: np.ndarray, chans: np.ndarray, ph: Photo, matrix: np.ndarray) -> Stability:
    """Refit the projective stage from ``matrix`` without each quadrant of the scan area.

    Parameters
    ----------
    scan : numpy.ndarray
        ``(k, H, W)`` normalised scan images (as fitted by the registration).
    chans : numpy.ndarray
        ``(4, h, w)`` photo absorbances (grey, R, G, B) of ``ph``.
    ph : Photo
    matrix : numpy.ndarray
        The registration judged (scan -> original photo pixels).

    Returns
    -------
    Stability
    """
    from maxrf.registration.register import fit_metric

    shape = scan.shape[-2:]
    parts = _parts(shape)

    def refit(keep: np.ndarray) -> tuple[np.ndarray, float]:
        metric = fit_metric(scan, chans, ph, matrix, mask=keep)
        # the refit starts at the judged optimum: a local Newton search suffices
        m = auto.refine_local(metric, matrix, auto._scale(matrix))
        r2, r2_0 = metric(m), metric(matrix)
        n_eff = min(int(keep.sum()), len(metric.pts)) / CORRELATION_AREA
        return m, n_eff * max(r2 - r2_0, 0.0) / max(1 - r2, 1e-6)

    # one after another in this thread, where the compiled sampler spreads each metric's
    # points over the cores; worker threads each kept their own malloc arena of freed
    # temporaries (8000 x 6000 photo of a smooth scan: peak RSS 631 MB with two workers,
    # 567 MB without; the whole registration 44 s at load 2.5)
    done = [refit(keep) for _, keep in parts]
    names = [name for name, _ in parts]
    mats = [m for m, _ in done]
    shifts = [displacement(matrix, m, shape) for m in mats]
    arr, g = np.asarray(shifts), np.asarray([gain for _, gain in done])
    counted = arr[g > SIGNIFICANT]
    return Stability(parts=names, matrices=mats, shifts=arr, gains=g,
                     max_shift=float(counted.max()) if counted.size else 0.0)
