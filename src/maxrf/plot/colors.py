"""Colour look-up tables for images written without a figure (exported maps, composites).

Matplotlib lives in :mod:`maxrf.plot` only; :mod:`maxrf.export` gets its colour maps from
here as plain ``(256, 3)`` uint8 tables. An element's table is the one the report draws
its map with (black -> the element's colour, :func:`maxrf.physics.element_color` -> a light
tint), so an exported Fe map has the report's Fe colours.
"""

from __future__ import annotations

import numpy as np

from maxrf.errors import ParameterError


def element_rgb(element: str) -> tuple[float, float, float]:
    """The element's colour (0..1 RGB), as in the report and viewer."""
    from maxrf.physics import element_color

    r, g, b = element_color(element)
    return (float(r), float(g), float(b))


def lut(cmap: str) -> np.ndarray:
    """``(256, 3)`` uint8 RGB table of a matplotlib colour map name (``'viridis'``,
    ``'Greys_r'``...) or of an element symbol (``'Fe'``: the report's element colours).

    Raises
    ------
    ParameterError
        Neither a colour map nor an element.
    """
    import matplotlib

    x = np.linspace(0.0, 1.0, 256)
    if cmap in matplotlib.colormaps:
        rgba = matplotlib.colormaps[cmap](x)
        return np.round(rgba[:, :3] * 255).astype(np.uint8)
    try:
        r, g, b = element_rgb(cmap)
    except Exception:  # noqa: BLE001 - not an element either: one clear error
        raise ParameterError(f"unknown colour map {cmap!r} (a matplotlib name such as "
                             f"'viridis' or 'gray', or an element symbol)") from None
    from matplotlib.colors import LinearSegmentedColormap

    tint = tuple(0.35 * c + 0.65 for c in (r, g, b))
    ramp = LinearSegmentedColormap.from_list(cmap, [(0, 0, 0), (r, g, b), tint], N=256)
    return np.round(ramp(x)[:, :3] * 255).astype(np.uint8)
