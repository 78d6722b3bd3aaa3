"""A physical scale bar under the report's maps when the scan's pixel size is known."""

from __future__ import annotations

import math

MAP_DISPLAY_PX = 260
"""Width (CSS pixels) at which the report draws a map (``img.map`` in report.css)."""


def nice_length(span_mm: float) -> float:
    """A round length (1, 2 or 5 x 10^k mm) of about a fifth of ``span_mm``."""
    target = span_mm / 5
    k = 10 ** math.floor(math.log10(target))
    return min((m * k for m in (1, 2, 5, 10)), key=lambda v: abs(v - target))


def scale_bar_svg(width_pixels: int, pixel_size_mm: float, display_px: int = MAP_DISPLAY_PX) -> str:
    """An SVG bar of a round length in mm, drawn to the scale of a map ``width_pixels`` wide
    shown ``display_px`` CSS pixels wide."""
    span = width_pixels * pixel_size_mm
    length = nice_length(span)
    bar = display_px * length / span
    label = f"{length:g} mm" if length >= 1 else f"{length * 1000:g} µm"
    return (f'<svg class="scalebar" data-scalebar-mm="{length:g}" width="{display_px}" height="18" '
            f'role="img" aria-label="scale bar {label}">'
            f'<rect x="0" y="2" width="{bar:.1f}" height="4" fill="#222"/>'
            f'<text x="{bar + 4:.1f}" y="9" font-size="10" fill="#222">{label}</text></svg>')


def with_scale_bars(cards: list[str], width_pixels: int, pixel_size_mm: float | None) -> list[str]:
    """Each map card with a scale bar under its linear view (unchanged without a pixel size)."""
    if not pixel_size_mm:
        return cards
    svg = scale_bar_svg(width_pixels, pixel_size_mm)
    marker = "<figcaption>linear scale"
    return [c.replace(marker, svg + marker, 1) for c in cards]
