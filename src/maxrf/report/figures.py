"""Figures of the report: hand-made SVG spectra and colour bars, PNG maps as data: URIs.

Spectra are drawn as inline SVG (crisp at any zoom, searchable text, hover titles on the
line markers). Maps are PNG images (one pixel per scan pixel, reduced by block means when
the scan is larger than ``max_side``), colour-mapped from black through the element's
colour; the colour bar is an SVG gradient with its value ticks.
"""

from __future__ import annotations

import base64
import html
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.plot.images import cmap_hex, figure_bytes

if TYPE_CHECKING:
    from maxrf.plot.images import Colormap, Figure

_IDS = itertools.count(1)

# ----------------------------------------------------------------------------- helpers


def esc(text: Any) -> str:
    """HTML/XML-escape any value as text."""
    return html.escape(str(text), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    """A ``data:`` URI of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def fmt(v: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, plain notation when reasonable."""
    if v is None or not np.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e6:
        d = max(0, digits - 1 - int(math.floor(math.log10(a))))
        return f"{v:.{d}f}"
    return f"{v:.{digits - 1}e}"


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``n`` of them)."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def envelope(x: np.ndarray, y: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Decimate a long series for drawing ``n_cols`` wide, keeping every column's min and max
    (so no peak disappears)."""
    n = len(x)
    if n <= 2 * n_cols:
        return x, y
    edges = np.linspace(0, n, n_cols + 1).astype(int)
    xs, ys = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = y[a:b]
        i, j = int(np.argmin(seg)), int(np.argmax(seg))
        for k in sorted({i, j}):
            xs.append(x[a + k])
            ys.append(seg[k])
    return np.asarray(xs), np.asarray(ys)


# ----------------------------------------------------------------------------- spectra


def spectrum_svg(
    x: np.ndarray,
    series: Sequence[Mapping[str, Any]],
    *,
    unit: str = "keV",
    markers: Sequence[Mapping[str, Any]] = (),
    log: bool = True,
    width: int = 960,
    height: int = 340,
    title: str = "",
    ylabel: str = "counts per channel",
    attrs: Mapping[str, str] | None = None,
) -> str:
    """An SVG plot of spectra with labelled line markers.

    Parameters
    ----------
    x : ndarray (C,)
        Energies (keV) or channel numbers.
    series : sequence of mapping
        ``{'y': (C,) array, 'label': str, 'color': css colour, 'width': float (optional),
        'dash': str (optional)}``; drawn in order.
    unit : str
        ``'keV'`` or ``'channel'`` (axis label).
    markers : sequence of mapping
        ``{'keV', 'label', 'color', 'main'}`` (see :func:`maxrf.report.layers.line_markers`);
        the ``main`` ones are labelled, all are drawn and carry a hover title.
    log : bool
        Logarithmic count axis.
    attrs : mapping, optional
        Extra attributes on the ``<svg>`` element (e.g. ``{'data-spectrum': 'sum'}``).

    Returns
    -------
    str
        The ``<svg>`` element.
    """
    x = np.asarray(x, dtype=np.float64)
    ys = [
        np.nan_to_num(np.asarray(s["y"], dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0) for s in series
    ]
    fr = _Frame.fit(x, ys, width, height, log)
    extra = "".join(f' {esc(k)}="{esc(v)}"' for k, v in (attrs or {}).items())
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="spectrum" '
        f'role="img" width="{width}" height="{height}"{extra}>',
        f"<title>{esc(title or 'spectrum')}</title>",
        f'<rect x="{fr.ml}" y="{fr.mt}" width="{fr.pw}" height="{fr.ph}" fill="#fff" stroke="#999"/>',
    ]
    out += _axes_svg(fr, unit, ylabel)
    out += _markers_svg(fr, markers)  # below the data
    for s, y in zip(series, ys):
        xd, yd = envelope(x, y, fr.pw)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(fr.tx(xd), fr.ty(yd)))
        dash = f' stroke-dasharray="{esc(s["dash"])}"' if s.get("dash") else ""
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{esc(s.get("color", "#000"))}" '
            f'stroke-width="{s.get("width", 1.2)}" stroke-linejoin="round"{dash}>'
            f"<title>{esc(s.get('label', ''))}</title></polyline>"
        )
    out += _legend_svg(fr, series)
    out.append("</svg>")
    return "\n".join(out)


@dataclass
class _Frame:
    """The plot area of a spectrum figure (pixels) and its data-to-pixel mappings."""

    width: int
    height: int
    x0: float
    x1: float
    log: bool
    y_lo: float
    y_hi: float
    yticks: list[float]
    lo_d: int = 0  # decades of a log axis
    hi_d: int = 1
    ml: int = 64
    mr: int = 16
    mt: int = 58
    mb: int = 44

    @property
    def pw(self) -> int:
        return self.width - self.ml - self.mr

    @property
    def ph(self) -> int:
        return self.height - self.mt - self.mb

    @classmethod
    def fit(cls, x: np.ndarray, ys: list[np.ndarray], width: int, height: int, log: bool) -> _Frame:
        """The frame holding ``x`` and every series ``ys``; a log axis spans whole decades
        from a floor set by the first (main) series."""
        x0, x1 = (float(x[0]), float(x[-1])) if len(x) > 1 else (0.0, 1.0)
        if x1 <= x0:
            x1 = x0 + 1
        ymax = max((float(np.max(y)) for y in ys if y.size), default=1.0)
        ymax = ymax if ymax > 0 else 1.0
        if not log:
            y_hi = ymax * 1.05
            return cls(width, height, x0, x1, False, 0.0, y_hi, nice_ticks(0, y_hi, 5))
        # the floor follows the first (main) series: baselines etc. do not stretch the axis down
        pos = [float(np.quantile(y[y > 0], 0.02)) for y in ys[:1] if np.any(y > 0)]
        floor = max(min(pos) if pos else ymax * 1e-4, ymax * 1e-5)
        lo_d = math.floor(math.log10(floor))
        hi_d = math.ceil(math.log10(ymax * 1.05)) if ymax > 0 else lo_d + 1
        hi_d = max(hi_d, lo_d + 1)
        return cls(width, height, x0, x1, True, 10.0**lo_d, 10.0**hi_d,
                   [10.0**k for k in range(lo_d, hi_d + 1)], lo_d, hi_d)

    def tx(self, v: Any) -> Any:
        return self.ml + self.pw * (np.asarray(v) - self.x0) / (self.x1 - self.x0)

    def ty(self, v: Any) -> Any:
        if self.log:
            lo_d, hi_d = self.lo_d, self.hi_d
            v = np.maximum(v, self.y_lo)
            return self.mt + self.ph * (1 - (np.log10(v) - lo_d) / (hi_d - lo_d))
        return self.mt + self.ph * (1 - np.clip(v, 0, None) / self.y_hi)


def _axes_svg(fr: _Frame, unit: str, ylabel: str) -> list[str]:
    """Grid lines, ticks and axis labels."""
    ml, mt, pw, ph = fr.ml, fr.mt, fr.pw, fr.ph
    out = []
    for v in nice_ticks(fr.x0, fr.x1, 10):
        px = float(fr.tx(v))
        out.append(f'<line x1="{px:.1f}" y1="{mt}" x2="{px:.1f}" y2="{mt + ph}" stroke="#eee"/>')
        out.append(f'<text x="{px:.1f}" y="{mt + ph + 16}" class="tick" text-anchor="middle">{v:g}</text>')
    for v in fr.yticks:
        py = float(fr.ty(np.array(v)))
        if not mt - 0.5 <= py <= mt + ph + 0.5:
            continue
        out.append(f'<line x1="{ml}" y1="{py:.1f}" x2="{ml + pw}" y2="{py:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{ml - 6}" y="{py + 4:.1f}" class="tick" text-anchor="end">{_ylabel(v, fr.log)}</text>'
        )
    xl = "energy (keV)" if unit == "keV" else "channel (no energy calibration)"
    out.append(
        f'<text x="{ml + pw / 2}" y="{fr.height - 6}" class="axis" text-anchor="middle">{esc(xl)}</text>'
    )
    out.append(
        f'<text x="14" y="{mt + ph / 2}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {mt + ph / 2})">{esc(ylabel)}{" (log)" if fr.log else ""}</text>'
    )
    return out


def _markers_svg(fr: _Frame, markers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Line markers (all drawn, with a hover title); the main ones labelled on up to three
    rows so the labels do not overlap."""
    mt, ph = fr.mt, fr.ph
    out = []
    rows_end: list[float] = [-1e9, -1e9, -1e9]
    for m in sorted(markers, key=lambda m: m["keV"]):
        kev = float(m["keV"])
        if not fr.x0 <= kev <= fr.x1:
            continue
        px = float(fr.tx(kev))
        color = esc(m.get("color", "#888"))
        main = bool(m.get("main"))
        dash = "" if main else ' stroke-dasharray="3,3"'
        out.append(
            f'<g class="marker" data-line="{esc(m.get("label", ""))}"><title>{esc(m.get("label", ""))} '
            f'{kev:.3f} keV</title><line x1="{px:.1f}" y1="{mt}" x2="{px:.1f}" y2="{mt + ph}" '
            f'stroke="{color}" stroke-width="{1.4 if main else 0.9}" opacity="0.75"{dash}/>'
        )
        if main:
            text = m.get("text") or m.get("element") or m.get("label", "")
            w = 7.5 * len(str(text)) + 4
            row = next((i for i, end in enumerate(rows_end) if px - w / 2 > end), None)
            if row is None:
                row = int(np.argmin(rows_end))
            rows_end[row] = px + w / 2
            py = mt - 6 - 15 * row
            out.append(
                f'<text x="{px:.1f}" y="{py}" class="mlabel" text-anchor="middle" '
                f'fill="{color}">{esc(text)}</text>'
            )
        out.append("</g>")
    return out


def _legend_svg(fr: _Frame, series: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    lx = fr.ml + 8
    for s in series:
        if not s.get("label"):
            continue
        out.append(
            f'<line x1="{lx}" y1="{fr.mt + 12}" x2="{lx + 18}" y2="{fr.mt + 12}" '
            f'stroke="{esc(s.get("color", "#000"))}" stroke-width="2.5"/>'
        )
        out.append(f'<text x="{lx + 22}" y="{fr.mt + 16}" class="legend">{esc(s["label"])}</text>')
        lx += 30 + 7 * len(str(s["label"]))
    return out


def _ylabel(v: float, log: bool) -> str:
    if log:
        k = int(round(math.log10(v)))
        return f"10<tspan dy='-6' font-size='9'>{k}</tspan>" if not 0 <= k <= 3 else f"{v:g}"
    return fmt(v, 3)


# ----------------------------------------------------------------------------- maps


#: pixels of a map reduced at a time by :func:`downsample` (bounds its temporaries)
BAND_PIXELS = 2**21


def reduction_factor(shape: tuple[int, ...], max_side: int) -> int:
    """The block size that brings the longest side of ``shape`` to at most ``max_side``."""
    return max(1, math.ceil(max(shape) / max(1, max_side)))


def _reduce_blocks(a: np.ndarray, f: int, reduce: Any, fill: Any, dtype: Any
                   ) -> tuple[np.ndarray, int]:
    """Reduce ``f x f`` blocks of ``a`` (padded with ``fill``) with ``reduce(blocks, axis)``,
    a band of block rows at a time, so the temporaries stay near :data:`BAND_PIXELS`."""
    h, w = a.shape
    if f == 1:
        return a, 1
    oh, ow = math.ceil(h / f), math.ceil(w / f)
    out = np.empty((oh, ow), dtype=dtype)
    step = max(1, BAND_PIXELS // (f * f * ow))  # block rows per band
    for r0 in range(0, oh, step):
        nb = min(step, oh - r0)
        band = np.full((nb * f, ow * f), fill, dtype=dtype)
        part = a[r0 * f:(r0 + nb) * f]
        band[:part.shape[0], :w] = part
        out[r0:r0 + nb] = reduce(band.reshape(nb, f, ow, f), axis=(1, 3))
    return out, f


def downsample(a: np.ndarray, max_side: int, factor: int | None = None) -> tuple[np.ndarray, int]:
    """Block-mean reduce a map so that its longest side is at most ``max_side``.

    ``factor`` imposes the block size instead (for a band of rows of a larger map). NaN
    pixels (and the padding of partial blocks) are left out of the means; an all-NaN
    block stays NaN. Works a band of rows at a time, so a map of tens of megapixels needs
    no full-size temporary.

    Returns
    -------
    (ndarray, int)
        The reduced map (float64) and the integer factor used (1 = unchanged).
    """
    def nanmean(blocks, axis):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
            return np.nanmean(blocks, axis=axis)

    f = factor or reduction_factor(a.shape, max_side)
    out, f = _reduce_blocks(a, f, nanmean, np.nan, np.float64)
    return (np.asarray(a, dtype=np.float64) if f == 1 else out), f


def downsample_any(mask: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """Reduce a boolean mask as :func:`downsample` does a map: a block is True when any of
    its pixels is (so a one-pixel particle stays visible at any reduction)."""
    return _reduce_blocks(np.asarray(mask, dtype=bool), reduction_factor(mask.shape, max_side),
                          np.any, False, bool)


def finite_range(a: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values (0, 1 when none or constant)."""
    ok = np.isfinite(a)
    f = a if ok.all() else a[ok]  # no copy of an all-finite map
    if f.size == 0:
        return 0.0, 1.0
    lo, hi = float(f.min()), float(f.max())
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    return lo, hi


def equalise(a: np.ndarray) -> np.ndarray:
    """Histogram-equalised map in 0..1, NaN kept: :func:`maxrf.maps.histeq` (the one
    equalisation; a constant map is 1.0)."""
    from maxrf.maps.display import histeq

    return histeq(a)


def colorbar_svg(
    cmap: Colormap,
    ticks: Sequence[tuple[float, str]],
    *,
    units: str = "",
    width: int = 260,
    attrs: Mapping[str, str] | None = None,
) -> str:
    """A horizontal colour bar: the colormap as an SVG gradient, ticks at fractions 0..1.

    Parameters
    ----------
    cmap : matplotlib colormap
    ticks : sequence of (fraction, label)
    units : str
        Shown under the bar.
    """
    gid = f"cbar{next(_IDS)}"
    fractions = np.linspace(0, 1, 17)
    stops = "".join(f'<stop offset="{f:.3f}" stop-color="{c}"/>'
                    for f, c in zip(fractions, cmap_hex(cmap, fractions)))
    extra = "".join(f' {esc(k)}="{esc(v)}"' for k, v in (attrs or {}).items())
    h = 44 if units else 32
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="colorbar" viewBox="0 0 {width} {h}" '
        f'width="{width}" height="{h}"{extra}>',
        f'<defs><linearGradient id="{gid}">{stops}</linearGradient></defs>',
        f'<rect x="8" y="2" width="{width - 16}" height="12" fill="url(#{gid})" stroke="#666" '
        f'stroke-width="0.5"/>',
    ]
    for f, label in ticks:
        px = 8 + (width - 16) * f
        anchor = "start" if f <= 0.02 else "end" if f >= 0.98 else "middle"
        out.append(f'<line x1="{px:.1f}" y1="14" x2="{px:.1f}" y2="18" stroke="#333"/>')
        out.append(f'<text x="{px:.1f}" y="28" class="tick" text-anchor="{anchor}">{esc(label)}</text>')
    if units:
        out.append(f'<text x="{width / 2}" y="41" class="units" text-anchor="middle">{esc(units)}</text>')
    out.append("</svg>")
    return "".join(out)


def figure_svg_uri(fig: Figure) -> str:
    """A matplotlib figure as an SVG ``data:`` URI (for an ``<img>``); closes the figure."""
    return data_uri(figure_bytes(fig, "svg"), "image/svg+xml")


def figure_png_uri(fig: Figure, dpi: int = 110) -> str:
    """A matplotlib figure as a PNG ``data:`` URI; closes the figure."""
    return data_uri(figure_bytes(fig, "png", dpi), "image/png")
