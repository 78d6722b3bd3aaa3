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
trusted. The largest displacement between a refit and the result over the scan area (scan
pixels) is the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maxrf.io.photo import Photo
from maxrf.registration import auto
from maxrf.registration import homography as hg

__all__ = ["Stability", "stability"]


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
    max_shift : float
        The largest of ``shifts`` (scan pixels).
    """

    parts: list[str]
    matrices: list[np.ndarray]
    shifts: np.ndarray
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
    names, mats, shifts = [], [], []
    for name, keep in _parts(shape):
        metric = fit_metric(scan, chans, ph, matrix, mask=keep)
        m = auto.refine_projective(metric, matrix, auto._scale(matrix))
        names.append(name)
        mats.append(m)
        shifts.append(displacement(matrix, m, shape))
    arr = np.asarray(shifts)
    return Stability(parts=names, matrices=mats, shifts=arr, max_shift=float(arr.max()))
