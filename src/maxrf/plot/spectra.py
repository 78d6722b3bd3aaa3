"""Spectrum plots: the energy calibration and the hotmax atlas.

Every function returns the matplotlib figure and axes it drew on, never calls
``plt.show()``, never blocks and never prompts. A new figure is made with
:mod:`matplotlib.pyplot` (so it shows in a notebook); pass ``ax`` to draw into your own.
Nothing is computed here beyond what is drawn: the atlas or the datastack holds the data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from maxrf.calibration import Calibration
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.io.spectra import Spectrum
    from maxrf.types import ArrayLike, DataStackLike

__all__ = ["plot_calibration", "plot_spectra", "plot_spectrum"]

_SPECTRUM = "#1f3b73"
_BASELINE = "#7f7f7f"
_ENVELOPE = "#e39b2d"
_SUBPEAK = "#c0392b"
_PEAK = "#2e8b57"


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


# ------------------------------------------------------------------------------ hotmax
def plot_spectrum(
    atlas: HotmaxAtlas, n: int, ax: Axes | None = None, *, yscale: str = "log"
) -> tuple[Figure, Axes]:
    """Plot one hotmax spectrum with its baseline, noise envelope and sub-peaks.

    Parameters
    ----------
    atlas : HotmaxAtlas
        The atlas.
    n : int
        Index of the hotmax spectrum (``atlas.hotmax_spectra[n]``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.
    yscale : {'log', 'linear'}
        Count axis; the logarithmic default shows the baseline and envelope under weak
        and strong peaks alike (channels with 0 counts are left out).

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes
        Energy (keV) on x, counts per channel on y.

    Raises
    ------
    ParameterError
        If ``n`` is not a spectrum of the atlas.
    """
    if yscale not in ("log", "linear"):
        raise ParameterError(f"yscale must be 'log' or 'linear', got {yscale!r}")
    held = atlas.spectrum_peaks(n)  # validates n
    n = int(n) % len(atlas)
    fig, ax = _axes(ax, (10.0, 4.5))
    x = atlas.x_keVs
    y = atlas.hotmax_spectra[n]
    base, env = atlas.baselines[n], atlas.envelopes[n]
    sub = atlas.subpeaks[n]
    log = yscale == "log"
    ax.plot(x, np.where(y > 0, y, np.nan) if log else y, color=_SPECTRUM, lw=0.8, label="spectrum")
    ax.plot(x, base, color=_BASELINE, lw=1.0, label="baseline")
    ax.fill_between(x, base, env, color=_ENVELOPE, alpha=0.25, lw=0)
    ax.plot(x, env, color=_ENVELOPE, lw=1.0, label=f"noise envelope ({atlas.n_sigma:g} σ)")
    for k in held:
        ax.axvline(x[atlas.hotmax_pixels[k, 2]], color=_PEAK, lw=0.8, ls=":", zorder=0)
    if len(sub):
        ax.plot(x[sub], y[sub], "v", color=_SUBPEAK, ms=5, label="sub-peaks")
        top = float(np.max(y)) if y.size else 1.0
        for c in sub:
            ax.annotate(
                f"{x[c]:.2f}", (x[c], y[c]), xytext=(0, 6), textcoords="offset points",
                ha="center", va="bottom", fontsize=7, rotation=90, color=_SUBPEAK,
            )
        if top > 0:
            ax.set_ylim(top=top * (8.0 if log else 1.15))
    r, c = atlas.spectrum_pixels[n]
    peaks_txt = ", ".join(f"{x[atlas.hotmax_pixels[k, 2]]:.2f}" for k in held)
    ax.set_title(f"hotmax spectrum {n} at pixel [{r}, {c}]  (max-spectrum peaks {peaks_txt} keV)")
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts per channel")
    ax.set_xlim(x[0], x[-1])
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)
    else:
        ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)
    return fig, ax


def plot_spectra(atlas: HotmaxAtlas) -> tuple[Figure, np.ndarray]:
    """Plot all hotmax spectra as a vertical stack, one strip per spectrum.

    Each strip holds one spectrum scaled to its highest channel above 0.5 keV (so the
    detector's zero peak does not flatten it), labelled with its index and hotmax pixel;
    triangles mark the max-spectrum peaks it holds.

    Parameters
    ----------
    atlas : HotmaxAtlas
        The atlas.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axs : numpy.ndarray of matplotlib.axes.Axes
        One axes per spectrum, top to bottom in atlas order, sharing the energy axis (keV).
    """
    import matplotlib.pyplot as plt

    n = len(atlas)
    x = atlas.x_keVs
    fig, axs = plt.subplots(
        max(n, 1), 1, sharex=True, squeeze=False, figsize=(10.0, 1.0 + 0.55 * max(n, 1)),
        gridspec_kw={"hspace": 0.0},
    )
    axs = axs[:, 0]
    if n == 0:
        axs[0].text(0.5, 0.5, "no hotmax spectra", ha="center", va="center", transform=axs[0].transAxes)
    sel = x >= 0.5
    for i in range(n):
        ax = axs[i]
        y = atlas.hotmax_spectra[i]
        ref = float(np.max(y[sel])) if np.any(sel) else float(np.max(y))
        yn = y / ref if ref > 0 else y
        ax.fill_between(x, 0, yn, color=_SPECTRUM, alpha=0.35, lw=0)
        ax.plot(x, yn, color=_SPECTRUM, lw=0.6)
        held = atlas.spectrum_peaks(i)
        ch = atlas.hotmax_pixels[held, 2]
        ax.plot(x[ch], np.minimum(yn[ch], 1.0) + 0.08, "v", color=_PEAK, ms=4)
        r, c = atlas.spectrum_pixels[i]
        ax.text(0.005, 0.8, f"{i}  [{r}, {c}]", transform=ax.transAxes, fontsize=8, va="top")
        ax.set_ylim(0, 1.2)
        ax.set_yticks([])
    axs[-1].set_xlim(x[0], x[-1])
    axs[-1].set_xlabel("energy (keV)")
    axs[0].set_title(f"hotmax spectra of {atlas.datastack.path.name} (index  [row, col])")
    height = fig.get_figheight()
    fig.subplots_adjust(top=1.0 - 0.45 / height, bottom=0.55 / height, left=0.04, right=0.98)
    return fig, axs


# -------------------------------------------------------------------------- calibration
def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _source_spectra(
    source: Any, calibration: Any
) -> tuple[list[tuple[str, np.ndarray]], Any, str]:
    """Spectra to draw, the calibration to use and a name for the title."""
    from maxrf.store import DataStack, open_datastack

    if isinstance(source, (str, os.PathLike)):
        source = open_datastack(source)
    if isinstance(source, DataStack):
        spectra = [
            ("max spectrum", np.asarray(source.max_spectrum, dtype=float)),
            ("sum spectrum (mean per pixel)", np.asarray(source.sum_spectrum, dtype=float)),
        ]
        return spectra, calibration if calibration is not None else source.calibration, source.path.name
    counts = getattr(source, "counts", None)
    if counts is not None:  # maxrf.io.spectra.Spectrum
        cal = calibration
        if cal is None and getattr(source, "header_calibration", None) is not None:
            gain, offset = source.header_calibration
            cal = {"gain_keV": gain, "offset_keV": offset, "peaks": [], "method": "header"}
        return [("spectrum", np.asarray(counts, dtype=float))], cal, str(getattr(source, "title", ""))
    y = np.asarray(source, dtype=float)
    if y.ndim != 1:
        raise ParameterError(f"expected a DataStack, a Spectrum or a 1-D spectrum, got shape {y.shape}")
    return [("spectrum", y)], calibration, ""


def plot_calibration(
    ds_or_spectrum: DataStackLike | Spectrum | ArrayLike,
    calibration: Calibration | Mapping[str, Any] | None = None,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """Plot spectra on the calibrated energy axis with the calibration's reference peaks.

    Parameters
    ----------
    ds_or_spectrum : DataStack, path, Spectrum or array_like
        A datastack (its max and sum spectra are drawn), a point spectrum
        (:class:`maxrf.io.spectra.Spectrum`) or counts per channel.
    calibration : dict or Calibration, optional
        ``gain_keV``, ``offset_keV`` and ``peaks`` (``[{name, channel, keV, residual_eV}]``)
        as a dict (the ``calibration`` layer's attributes) or a
        :class:`maxrf.calibration.Calibration`. Default: the datastack's (or the spectrum
        file's) own; without any, the x axis is the channel number.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes
        Energy (keV) on x, counts per channel on a logarithmic y axis. Each reference peak
        is a dotted line at its reference energy, a dot where the calibration puts its
        fitted channel, and a label with its name and residual (eV).
    """
    spectra, cal, name = _source_spectra(ds_or_spectrum, calibration)
    fig, ax = _axes(ax, (10.0, 4.5))
    nchan = spectra[0][1].size
    channels = np.arange(nchan, dtype=float)
    gain = _get(cal, "gain_keV") if cal is not None else None
    offset = _get(cal, "offset_keV") if cal is not None else None
    calibrated = gain is not None and offset is not None
    x = float(offset) + float(gain) * channels if calibrated else channels
    colors = [_SPECTRUM, _ENVELOPE]
    for i, (label, y) in enumerate(spectra):
        ax.plot(x, np.where(y > 0, y, np.nan), lw=0.8, color=colors[i % 2], label=label)
    ax.set_yscale("log")
    ymax = max(float(np.nanmax(y)) if np.any(y > 0) else 1.0 for _, y in spectra)
    peaks: Sequence[Any] = (_get(cal, "peaks", []) or []) if cal is not None else []
    main = spectra[0][1]
    for p in peaks if calibrated else []:
        ch = float(_get(p, "channel", np.nan))
        ref = _get(p, "keV")
        res = _get(p, "residual_eV")
        used = bool(_get(p, "used", True))
        color = _SUBPEAK if used else _BASELINE
        if ref is not None:
            ax.axvline(float(ref), color=color, lw=0.8, ls=":", zorder=0)
        xpos = float(offset) + float(gain) * ch if np.isfinite(ch) else float(ref or 0.0)
        k = int(np.clip(round(ch), 0, nchan - 1)) if np.isfinite(ch) else 0
        ypos = float(main[k]) if main[k] > 0 else ymax
        ax.plot([xpos], [ypos], "o", color=color, ms=4)
        text = str(_get(p, "name", ""))
        if res is not None:
            text += f" ({float(res):+.0f} eV)"
        ax.annotate(
            text, (xpos, ypos), xytext=(0, 8), textcoords="offset points", rotation=90,
            ha="center", va="bottom", fontsize=7, color=color,
        )
    lows = [float(np.min(y[y > 0])) for _, y in spectra if np.any(y > 0)]
    ax.set_ylim(bottom=max(min(lows), ymax * 1e-6) if lows else None, top=ymax * 30)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("counts per channel")
    if calibrated:
        ax.set_xlabel("energy (keV)")
        method = _get(cal, "method", None)
        title = f"E = {float(offset):.4f} + {float(gain):.6f} × channel keV"
        if method:
            title += f"  ({method})"
    else:
        ax.set_xlabel("channel")
        title = "uncalibrated"
    ax.set_title(f"{name}: {title}" if name else title)
    ax.legend(loc="upper right", fontsize=8)
    return fig, ax
