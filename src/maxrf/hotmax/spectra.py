"""The spectra of the hotmax atlas: hotmax pixels grouped, read, and their noise and sub-peaks;
the main line groups of an element."""

from __future__ import annotations

import math
import os

import numpy as np
from scipy import ndimage

from maxrf import peaks as _peaks
from maxrf.errors import ParameterError
from maxrf.peaks import restore_level  # noqa: F401 - kept as a public name of hotmax
from maxrf.pixels import read_spectra
from maxrf.store import DataStack, open_datastack
from maxrf.types import ClientLike

#: name of the datastack layer
LAYER = "hotmax"
#: version of the stored layer's layout
LAYER_VERSION = 1
#: defaults of the build options (see :class:`HotmaxAtlas`)
DEFAULTS: dict[str, float] = {"n_sigma": 3.0, "n_sigma_peaks": 5.0, "smooth": 1.0}
#: main line groups considered by :meth:`HotmaxAtlas.finder`, in order of preference
_GROUPS = ("Ka", "Kb", "La", "Lb", "Ma")


# ---------------------------------------------------------------------------- helpers
def _open(ds: DataStack | str | os.PathLike) -> DataStack:
    if isinstance(ds, (DataStack, str, os.PathLike)):
        return open_datastack(ds)
    raise ParameterError(f"expected a DataStack or the path of a .datastack, got {type(ds).__name__}")


def _check_positive(name: str, value: float | None) -> float | None:
    """``value`` as a positive float, or None when None."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be a positive number, got {value!r}")
    return v


def _check_nonnegative(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ParameterError(f"{name} must be >= 0, got {value!r}")
    return v


def group_pixels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group peaks whose hotmax pixels coincide.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``(n_peaks, 3)`` int, rows ``[row, col, channel]`` sorted by channel.

    Returns
    -------
    peak_spectrum : numpy.ndarray
        ``(n_peaks,)`` int: index of the group (spectrum) of each peak. Groups are numbered
        in order of their lowest channel, i.e. sorted by their lowest-energy peak.
    spectrum_pixels : numpy.ndarray
        ``(n_spectra, 2)`` int ``[row, col]`` of each group.
    """
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1, 3)
    order = np.argsort(pixels[:, 2], kind="stable")
    index: dict[tuple[int, int], int] = {}
    peak_spectrum = np.empty(len(pixels), dtype=np.int64)
    for k in order:
        key = (int(pixels[k, 0]), int(pixels[k, 1]))
        peak_spectrum[k] = index.setdefault(key, len(index))
    spectrum_pixels = np.array(list(index), dtype=np.int64).reshape(-1, 2)
    return peak_spectrum, spectrum_pixels


def read_pixel_spectra(ds: DataStack, pixels: np.ndarray, client: ClientLike = None) -> np.ndarray:
    """Spectra of a few pixels, reading each cube chunk that holds one of them once.

    Parameters
    ----------
    ds : DataStack
        The scan.
    pixels : numpy.ndarray
        ``(n, 2)`` int ``[row, col]``.
    client : dask.distributed.Client or str, optional
        Read on this cluster (or scheduler address, or ``MAXRF_SCHEDULER``); default the
        local threads.

    Returns
    -------
    numpy.ndarray
        ``(n, C)`` float64 counts.
    """
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1, 2)
    values = read_spectra(ds, pixels[:, 0], pixels[:, 1], client=client)
    return np.asarray(values, dtype=np.float64).reshape(len(pixels), ds.shape[2])


def spectrum_noise(
    y: np.ndarray,
    *,
    fwhm_channels: float,
    n_sigma: float = 3.0,
    smooth: float = 1.0,
    counts: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline, Poisson noise envelope and sub-peaks of one spectrum.

    Parameters
    ----------
    y : numpy.ndarray
        Spectrum (counts per channel).
    fwhm_channels : float
        Peak FWHM (channels); sizes the baseline window.
    n_sigma : float
        Envelope height above the baseline in Poisson standard deviations.
    smooth : float
        Gaussian smoothing (sigma, channels) of the copy searched for sub-peaks (0: none).
    counts : bool
        True when ``y`` holds raw counts (Poisson noise); otherwise the noise scale is
        measured (:func:`maxrf.peaks.noise_scale`), e.g. for a cube smoothed at convert.

    Returns
    -------
    baseline, envelope : numpy.ndarray
        Counts per channel, float64.
    subpeaks : numpy.ndarray
        Channels (int, ascending) of the local maxima of the smoothed spectrum that rise
        above the envelope and stand out of their own noise.
    """
    y = np.asarray(y, dtype=np.float64)
    if not np.any(y > 0):
        zero = np.zeros_like(y)
        return zero, _peaks.get_noise_envelope(y, zero, n_sigma), np.zeros(0, dtype=np.intp)
    base = np.maximum(_peaks.baseline(y, fwhm_channels=fwhm_channels), 0.0)
    scale = 1.0 if counts else _peaks.noise_scale(y, base)
    base = _peaks.restore_level(y, base, fwhm_channels=fwhm_channels, scale=scale)
    env = _peaks.get_noise_envelope(y, base, n_sigma, scale=scale)
    ys = ndimage.gaussian_filter1d(y, smooth) if smooth and smooth > 0 else y
    reduction = 1.0 / math.sqrt(2.0 * math.sqrt(math.pi) * smooth) if smooth > 0.3 else 1.0
    # a sub-peak stands out of the noise at its own height (not a ripple on a flank)
    prom = 2.0 * scale * reduction * np.sqrt(np.maximum(ys, 1.0))
    sub = _peaks.find_subpeaks(
        ys, env, distance=max(1, int(round(0.5 * fwhm_channels))), prominence=prom
    )
    return base, env, sub


def element_main_lines(
    element: str, energy_range: tuple[float, float], tube_kv: float | None = 40.0
) -> list[tuple[str, float, float]]:
    """Main line groups of an element on an energy axis, strongest first.

    A group (``Ka``, ``Kb``, ``La``, ``Lb``, ``Ma``) counts when its summed relative
    intensity (:func:`maxrf.physics.element_lines`) is at least 15 % of the element's
    strongest group on the axis; its energy is :func:`maxrf.physics.line_energy`.

    Parameters
    ----------
    element : str
        Chemical symbol.
    energy_range : (float, float)
        Lowest and highest energy of the axis (keV).
    tube_kv : float or None
        Tube voltage (kV), which decides which shells are excited.

    Returns
    -------
    list of (str, float, float)
        ``(group, energy_keV, relative_intensity)``, strongest first; empty when no line
        of the element lies on the axis.
    """
    from maxrf import physics

    lo, hi = float(min(energy_range)), float(max(energy_range))
    lines = physics.element_lines(element, tube_kv, min_keV=max(lo, 0.0))
    sums: dict[str, float] = {}
    for ln in lines:
        g = ln.siegbahn[:2]
        if g in _GROUPS and ln.energy_keV <= hi:
            sums[g] = sums.get(g, 0.0) + ln.rel_intensity
    if not sums:
        return []
    top = max(sums.values())
    out = []
    for g, s in sums.items():
        if s >= 0.15 * top:
            out.append((g, physics.line_energy(element, g), s / top))
    out.sort(key=lambda t: -t[2])
    return out
