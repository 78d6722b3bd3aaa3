"""The peak-pattern puzzle: line patterns of elements beside a hotmax spectrum.

A hotmax spectrum is a puzzle whose pieces are line patterns: :func:`plot_ptrn` draws
one element's pattern (sticks at its lines, height proportional to relative intensity),
:func:`plot_puzzle` draws hotmax spectrum ``n`` with its peaks labelled above a panel for
patterns -- the identified elements' patterns when an identification is stored -- and
:func:`plot_patterns` compares a few elements' patterns.

As in the maxrf4u notebook::

    ax0, ax1 = plot_puzzle(hma, 12)
    plot_ptrn('Cu', -1, ax1)
    plot_ptrn('Zn', -2, ax1)

Every function draws only: patterns come from :func:`maxrf.identify.element_pattern`
(line tables of :mod:`maxrf.physics`), the spectrum, its baseline, envelope and peaks
from the atlas, labels from the stored identification. Nothing blocks or prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import ParameterError
from maxrf.physics.constants import DEFAULT_FWHM_KEV

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.typing import ColorType

    from maxrf.hotmax import HotmaxAtlas
    from maxrf.identify import Identification

__all__ = ["plot_patterns", "plot_ptrn", "plot_puzzle"]

_SPECTRUM = "#1f3b73"
_BASELINE = "#7f7f7f"
_ENVELOPE = "#e39b2d"
_INSTRUMENT = "#8a8a8a"
_UNEXPLAINED = "#c0392b"


def _new_axes(figsize: tuple[float, float]) -> Axes:
    import matplotlib.pyplot as plt

    _fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_ptrn(
    elem: str,
    offset: float = 0.0,
    ax: Axes | None = None,
    *,
    tube_kv: float | None = 40.0,
    scale: float = 1.0,
    min_rel: float = 0.01,
    label_rel: float = 0.1,
    fwhm_at_6keV: float = DEFAULT_FWHM_KEV,
    color: ColorType | None = None,
    escape: bool = False,
    labels: bool = True,
    linestyle: str = "-",
    alpha: float = 1.0,
    text: str | None = None,
) -> dict[str, Any]:
    """Draw the line pattern of an element as sticks (maxrf4u's ``plot_ptrn``).

    Each peak of :func:`maxrf.identify.element_pattern` (lines closer than the detector
    resolution merged) is a vertical stick from ``offset`` to ``offset + scale * rel``
    standing on a thin base line; the element symbol is written at the strongest stick and
    the Siegbahn names above the sticks of relative intensity ``>= label_rel``.

    Parameters
    ----------
    elem : str
        Chemical symbol (``'Cu'``).
    offset : float
        Vertical position of the pattern's base line (data units of ``ax``), e.g. -1, -2
        for successive patterns under a puzzle.
    ax : matplotlib.axes.Axes, optional
        Axes with energy (keV) on x; a new figure otherwise.
    tube_kv : float or None
        Tube voltage (kV) for the relative intensities (None: every level excited).
    scale : float
        Height of the strongest stick (data units).
    min_rel : float
        Lines weaker than this share of the strongest are not drawn.
    label_rel : float
        Sticks at least this strong get their line name.
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV used to merge close lines.
    color : matplotlib colour, optional
        Default :func:`maxrf.physics.element_color`.
    escape : bool
        Also draw the Si escape peaks (dashed).
    labels : bool
        Write the element symbol and line names.
    linestyle : str
        Line style of the sticks (``'--'`` for a merely possible element).
    alpha : float
        Opacity of the pattern.
    text : str, optional
        Label written at the strongest stick instead of the symbol (e.g. ``'Zn?'``).

    Returns
    -------
    dict
        ``{'elem': 'Cu', 'name': 'Copper', 'peaks_xy': (n, 2) [keV, rel], 'color': (3,)
        rgb array, 'ax': the axes}`` as maxrf4u returns.

    Raises
    ------
    ParameterError
        Unknown element.
    """
    from maxrf.identify import element_pattern

    pat = element_pattern(elem, tube_kv, min_rel=min_rel, fwhm_at_6keV=fwhm_at_6keV)
    if ax is None:
        ax = _new_axes((9.0, 2.5))
    col = np.asarray(pat.color if color is None else _rgb(color), dtype=float)
    if len(pat.peaks_xy):
        off = float(offset)
        _sticks(ax, pat, off, scale, col, linestyle, alpha, escape)
        if labels:
            _stick_labels(ax, pat, off, scale, col, label_rel, text)
    return {"elem": pat.element, "name": pat.name, "peaks_xy": pat.peaks_xy, "color": col, "ax": ax}


def _sticks(ax: Axes, pat: Any, off: float, scale: float, col: np.ndarray, linestyle: str,
            alpha: float, escape: bool) -> None:
    """A pattern's sticks on their base line at height ``off`` (and its escape peaks)."""
    xy = pat.peaks_xy
    ax.vlines(xy[:, 0], off, off + scale * xy[:, 1], colors=[col], lw=2.0, linestyles=linestyle,
              alpha=alpha)
    ax.hlines(off, xy[:, 0].min() - 0.1, xy[:, 0].max() + 0.1, colors=[col], lw=0.6, alpha=alpha)
    if escape and len(pat.escape_keV):
        ex = pat.escape_keV
        ax.vlines(ex[:, 0], off, off + scale * np.maximum(ex[:, 1], 0.02), colors=[col], lw=1.0,
                  linestyles="--")


def _stick_labels(ax: Axes, pat: Any, off: float, scale: float, col: np.ndarray,
                  label_rel: float, text: str | None) -> None:
    """The symbol (or ``text``) at the strongest stick, line names above the strong ones."""
    xy = pat.peaks_xy
    k = int(np.argmax(xy[:, 1]))
    ax.annotate(pat.element if text is None else text, (xy[k, 0], off + scale * xy[k, 1]),
                xytext=(3, 0), textcoords="offset points", ha="left", va="top", fontsize=9,
                fontweight="bold", color=col)
    for p in pat.peaks:
        if p.rel_intensity >= label_rel and p is not pat.peaks[k]:
            ax.annotate(p.name, (p.energy_keV, off + scale * p.rel_intensity), xytext=(0, 1),
                        textcoords="offset points", ha="center", va="bottom", fontsize=6,
                        color=col)


def _rgb(color: Any) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def plot_patterns(
    elements: Sequence[str] | str,
    ax: Axes | None = None,
    *,
    tube_kv: float | None = 40.0,
    spacing: float = 1.5,
    keV_range: tuple[float, float] | None = None,
    **kw: Any,
) -> Axes:
    """Draw several elements' line patterns one under the other, to compare them.

    Parameters
    ----------
    elements : sequence of str or str
        Chemical symbols (a string may hold several: ``'Pb As'`` or ``'Pb,As'``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.
    tube_kv : float or None
        Tube voltage (kV).
    spacing : float
        Vertical distance between patterns (the strongest stick is 1).
    keV_range : (float, float), optional
        x limits (keV); default the patterns' extent.
    **kw
        Passed to :func:`plot_ptrn`.

    Returns
    -------
    matplotlib.axes.Axes
        Energy (keV) on x; pattern ``i`` stands on ``y = -i * spacing``.

    Raises
    ------
    ParameterError
        No element, or an unknown one.
    """
    if isinstance(elements, str):
        elements = [e for e in elements.replace(",", " ").split() if e]
    elements = list(elements)
    if not elements:
        raise ParameterError("give at least one element to plot_patterns")
    if ax is None:
        ax = _new_axes((9.0, 1.0 + 0.9 * len(elements)))
    xs = []
    for i, el in enumerate(elements):
        res = plot_ptrn(el, -i * spacing, ax, tube_kv=tube_kv, **kw)
        xs.extend(res["peaks_xy"][:, 0].tolist())
    ax.set_yticks([-i * spacing for i in range(len(elements))])
    ax.set_yticklabels([str(e) for e in elements])
    ax.set_xlabel("energy (keV)")
    if keV_range is not None:
        ax.set_xlim(*keV_range)
    elif xs:
        ax.set_xlim(max(0.0, min(xs) - 0.5), max(xs) + 0.5)
    ax.set_ylim(-(len(elements) - 1) * spacing - 0.3, 1.35)
    ax.grid(axis="x", alpha=0.3)
    return ax


# ------------------------------------------------------------------------------ puzzle
def _stored_identification(atlas: Any) -> Any:
    """The identification layer's attrs of the atlas's datastack, or None (never computes)."""
    ds = getattr(atlas, "datastack", None) or getattr(atlas, "ds", None)
    if ds is None:
        return None
    try:
        if "identification" not in ds.layers:
            return None
        return ds.read("identification").attrs
    except Exception:
        return None


def _spectrum_labels(ident: Any, n: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Peak labels of spectrum ``n`` and its (element, status) list from an identification."""
    peaks: list[dict[str, Any]] = []
    elements: list[tuple[str, str]] = []
    if ident is None:
        return peaks, elements
    spectra = getattr(ident, "spectra", None)
    if spectra is not None and not isinstance(ident, Mapping):  # an Identification
        if 0 <= n < len(spectra):
            s = spectra[n]
            peaks = [{"keV": p.keV, "label": p.label, "kind": p.kind} for p in s.peaks]
            rank = {"present": 0, "possible": 1}
            els = [(r.element, r.status) for r in s.elements.values() if r.status in rank]
            els.sort(key=lambda t: (rank[t[1]], -s.elements[t[0]].confidence))
            elements = els
        return peaks, elements
    if isinstance(ident, Mapping):
        sp = ident.get("spectrum_peaks") or []
        if 0 <= n < len(sp) and isinstance(sp[n], list):
            peaks = [p for p in sp[n] if isinstance(p, Mapping) and "keV" in p]
        for item in ident.get("elements") or []:
            if not isinstance(item, Mapping):
                continue
            st = str(item.get("status", ""))
            if st in ("present", "possible") and n in (item.get("spectra") or []):
                elements.append((str(item.get("element")), st))
    return peaks, elements


def plot_puzzle(
    atlas: HotmaxAtlas,
    n: int,
    *,
    identification: Identification | Mapping[str, Any] | None = None,
    tube_kv: float | None = None,
    yscale: str = "linear",
    instrument: bool = True,
    figsize: tuple[float, float] = (11.0, 7.0),
) -> tuple[Axes, Axes]:
    """Hotmax spectrum ``n`` with its peaks labelled, above a panel of line patterns.

    Parameters
    ----------
    atlas : HotmaxAtlas
        The atlas (``x_keVs``, ``hotmax_spectra``, ``baselines``, ``envelopes``,
        ``subpeaks``). :func:`maxrf.plot_puzzle` also accepts a DataStack (its atlas).
    n : int
        Index of the hotmax spectrum.
    identification : Identification or dict, optional
        Result of :func:`maxrf.identify.identify` (or the ``identification`` layer's attrs).
        Default: the layer stored in the atlas's datastack, when there is one. With it the
        peaks carry their explanation (``Fe Ka1``, ``Rh Ka1 Compton``, ``?``) and the
        pattern panel shows the elements present (solid) or possible in spectrum ``n``.
    tube_kv : float, optional
        Tube voltage (kV) of the patterns; default the identification's, else 40.
    yscale : {'linear', 'log'}
        Count axis of the spectrum.
    instrument : bool
        Mark the instrument peaks (grey, dotted) in the pattern panel.
    figsize : (float, float)
        Size of the new figure (inches).

    Returns
    -------
    ax0 : matplotlib.axes.Axes
        The spectrum (counts per channel).
    ax1 : matplotlib.axes.Axes
        The pattern panel (x shared): add your own guesses with ``plot_ptrn(el, -k, ax1)``.

    Raises
    ------
    ParameterError
        ``n`` outside the atlas or a bad ``yscale``.
    """
    import matplotlib.pyplot as plt

    if yscale not in ("linear", "log"):
        raise ParameterError(f"yscale must be 'linear' or 'log', got {yscale!r}")
    y, i = _hotmax_spectrum(atlas, n)
    x = np.asarray(atlas.x_keVs, dtype=float)
    ident = identification if identification is not None else _stored_identification(atlas)
    if tube_kv is None:
        tube_kv = float(_get(ident, "tube_kv", None) or 40.0)
    peaks, elements = _spectrum_labels(ident, i)

    _fig, (ax0, ax1) = plt.subplots(
        2, 1, figsize=figsize, sharex=True, layout="constrained",
        gridspec_kw={"height_ratios": [2.2, 1.0 + 0.35 * max(len(elements), 2)]},
    )
    _draw_spectrum(ax0, ax1, atlas, x, y, i, peaks, yscale == "log")
    _draw_patterns(ax1, ident if instrument else None, elements, x, i, tube_kv)
    return ax0, ax1


def _hotmax_spectrum(atlas: Any, n: Any) -> tuple[np.ndarray, int]:
    """Hotmax spectrum ``n`` of the atlas (negative counts from the end) and its index."""
    if not hasattr(atlas, "hotmax_spectra"):
        raise ParameterError(
            f"plot_puzzle draws a HotmaxAtlas, got {type(atlas).__name__}; maxrf.plot_puzzle "
            "(maxrf.compat.plot_puzzle) also accepts a DataStack or its path"
        )
    spectra = np.atleast_2d(np.asarray(atlas.hotmax_spectra, dtype=float))
    try:
        i = int(n)
    except (TypeError, ValueError):
        raise ParameterError(f"hotmax spectrum index must be an integer, got {n!r}") from None
    if not -len(spectra) <= i < len(spectra):
        raise ParameterError(f"no hotmax spectrum {n}: the atlas has {len(spectra)} (0..{len(spectra) - 1})")
    i %= len(spectra)
    return spectra[i], i


def _draw_spectrum(ax0: Axes, ax1: Axes, atlas: Any, x: np.ndarray, y: np.ndarray, i: int,
                   peaks: list[dict[str, Any]], log: bool) -> None:
    """The spectrum, baseline and envelope on ``ax0``, its peaks labelled (and marked on ``ax1``)."""
    ax0.plot(x, np.where(y > 0, y, np.nan) if log else y, color=_SPECTRUM, lw=0.8, label="spectrum")
    base = _row(atlas, ("baselines",), i)
    env = _row(atlas, ("envelopes",), i)
    if base is not None:
        ax0.plot(x, base, color=_BASELINE, lw=0.8, label="baseline")
    if env is not None:
        ax0.plot(x, env, color=_ENVELOPE, lw=0.8, label="noise envelope")
    if not peaks:  # no identification: the atlas's sub-peaks, labelled by energy
        sub = getattr(atlas, "subpeaks", None)
        idx = np.asarray(sub[i], dtype=int) if sub is not None and i < len(sub) else np.zeros(0, int)
        peaks = [{"keV": float(x[c]), "label": f"{x[c]:.2f}", "kind": ""} for c in idx]
    top = float(np.nanmax(y)) if y.size else 1.0
    for p in peaks:
        kev = float(p["keV"])
        c = int(np.argmin(np.abs(x - kev)))
        kind = str(p.get("kind", ""))
        col = _UNEXPLAINED if kind == "unexplained" else (
            _INSTRUMENT if kind not in ("element", "") else _SPECTRUM)
        ax0.annotate(
            str(p.get("label", f"{kev:.2f}")), (kev, y[c]), xytext=(0, 4), textcoords="offset points",
            ha="center", va="bottom", rotation=90, fontsize=7, color=col,
        )
        ax1.axvline(kev, color=col, lw=0.6, ls=":", zorder=0)
    pixel = getattr(atlas, "spectrum_pixels", None)
    where = f" at pixel [{pixel[i][0]}, {pixel[i][1]}]" if pixel is not None and i < len(pixel) else ""
    ax0.set_title(f"hotmax spectrum {i}{where}")
    ax0.set_ylabel("counts per channel")
    if log:
        ax0.set_yscale("log")
        ax0.set_ylim(0.5, top * 10 if top > 0 else 10)
    else:
        ax0.set_ylim(0, top * 1.35 if top > 0 else 1)
    ax0.legend(loc="upper right", fontsize=8)


def _draw_patterns(ax1: Axes, ident: Any, elements: list[tuple[str, str]], x: np.ndarray,
                   i: int, tube_kv: float) -> None:
    """The pattern panel: instrument peaks of ``ident`` at the top (none without it), then
    the elements, present solid and possible dashed ('Zn?')."""
    if ident is not None:
        for item in _get(ident, "instrument", []) or []:
            spec = item.get("spectra") if isinstance(item, Mapping) else None
            if spec is not None and i not in spec:
                continue
            kev = item.get("keV") if isinstance(item, Mapping) else None
            if kev is not None and x[0] <= float(kev) <= x[-1]:
                ax1.vlines(float(kev), 0.0, 0.6, colors=_INSTRUMENT, lw=1.5)
    for k, (el, status) in enumerate(elements, start=1):
        if status == "present":
            plot_ptrn(el, -k, ax1, tube_kv=tube_kv)
        else:
            plot_ptrn(el, -k, ax1, tube_kv=tube_kv, linestyle="--", alpha=0.6, text=f"{el}?")
    ax1.set_ylim(-max(len(elements), 3) - 0.3, 1.3)
    ax1.set_yticks([])
    ax1.set_xlabel("energy (keV)")
    ax1.set_ylabel("patterns")
    ax1.set_xlim(x[0], x[-1])


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _row(atlas: Any, names: Sequence[str], i: int) -> np.ndarray | None:
    for name in names:
        arr = getattr(atlas, name, None)
        if arr is not None and not callable(arr):
            arr = np.asarray(arr, dtype=float)
            if arr.ndim == 2 and i < len(arr):
                return arr[i]
    return None
