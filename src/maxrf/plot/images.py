"""Images of maps and figures as bytes: the colour maps, PNG encoding and figure capture
shared by the report, the viewer and image export.

matplotlib is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes  # noqa: F401 - for annotations in maxrf.compat
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

#: colour of NaN pixels (no data) in the report's maps
BAD_GREY = (0.85, 0.85, 0.85)


def element_cmap(rgb: Sequence[float], name: str = "element") -> Colormap:
    """Black -> the element's colour -> a light tint of it; NaN pixels grey."""
    from matplotlib.colors import LinearSegmentedColormap

    r, g, b = (float(v) for v in rgb)
    tint = tuple(0.35 * c + 0.65 for c in (r, g, b))
    cmap = LinearSegmentedColormap.from_list(name, [(0, 0, 0), (r, g, b), tint], N=256)
    return cmap.with_extremes(bad=BAD_GREY)


def viridis(bad: tuple[float, float, float] | None = None) -> Colormap:
    """matplotlib's viridis (maps with no element), NaN pixels ``bad`` (default transparent)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return cmap if bad is None else cmap.with_extremes(bad=bad)


def map_png(a: np.ndarray, cmap: Colormap, vmin: float, vmax: float) -> bytes:
    """PNG bytes of a colour-mapped map (NaN shown in the colormap's 'bad' colour)."""
    import matplotlib.image as mimage

    buf = io.BytesIO()
    masked = np.ma.masked_invalid(np.asarray(a, dtype=np.float64))
    mimage.imsave(buf, masked, cmap=cmap, vmin=vmin, vmax=vmax, format="png", origin="upper")
    return buf.getvalue()


def cmap_hex(cmap: Colormap, fractions: Sequence[float]) -> list[str]:
    """``#rrggbb`` colours of ``cmap`` at ``fractions`` (0..1), e.g. for an SVG gradient."""
    from matplotlib.colors import to_hex

    return [to_hex(cmap(float(f))) for f in fractions]


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int | None = None) -> bytes:
    """The figure encoded as ``fmt`` (``'png'``, ``'svg'``), cropped to its content; closes it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=dpi or "figure", bbox_inches="tight")
    finally:
        with contextlib.suppress(Exception):
            import matplotlib.pyplot as plt

            plt.close(fig)
    return buf.getvalue()


def use_file_backend() -> None:
    """Draw off-screen (Agg) for writing files, unless pyplot is already in use (a notebook
    or a test session: switching its backend would close the user's figures)."""
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")


def close_figure(fig: Figure) -> None:
    """Release a figure made with pyplot (no-op for one pyplot does not know)."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def image_formats() -> list[str]:
    """File formats (suffixes without the dot) a figure can be saved as."""
    from matplotlib.figure import Figure

    return sorted(Figure().canvas.get_supported_filetypes())


def figure_of(res: Any) -> Figure | None:
    """The Figure of whatever a plot function returned (``fig``, ``ax``, ``(fig, ax)``,
    ``(ax0, ax1)``, an array of axes)."""
    from matplotlib.figure import Figure

    items = res if isinstance(res, (tuple, list)) else [res]
    for item in items:
        if isinstance(item, Figure):
            return item
        fig = getattr(item, "figure", None)
        if isinstance(fig, Figure):
            return fig
        if isinstance(item, np.ndarray) and item.size:
            fig = getattr(item.flat[0], "figure", None)
            if isinstance(fig, Figure):
                return fig
    return None


@contextlib.contextmanager
def closing_new_figures() -> Iterator[None]:
    """Close every pyplot figure opened inside the block (plot functions open their own)."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    try:
        yield
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)


def speckle_overlay(
    mask: np.ndarray,
    factor: int,
    shape: tuple[int, int],
    background: np.ndarray | None,
    labels: Sequence[tuple[float, float, str]],
    color: str,
    title: str,
) -> Figure:
    """Speckles in ``color`` over a grey background map, each labelled at (row, col).

    Parameters
    ----------
    mask : ndarray of bool
        Speckle pixels, reduced by ``factor`` from the full-size ``shape`` (rows, cols).
    background : ndarray, optional
        The map under them (same reduced grid), values 0..1 (equalised); black if None.
    labels : sequence of (row, col, text)
        Full-resolution pixel coordinates of the labels.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    h, w = shape
    extent = (-0.5, mask.shape[1] * factor - 0.5, mask.shape[0] * factor - 0.5, -0.5)
    scale = min(7.0 / max(w, 1), 5.0 / max(h, 1))
    fig = Figure(figsize=(max(3.0, w * scale), max(2.5, h * scale)))
    ax = fig.add_subplot()
    if background is not None:
        ax.imshow(background, cmap="gray", interpolation="nearest", extent=extent)
    else:
        ax.imshow(np.zeros(mask.shape), cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                  extent=extent)
    masked = np.ma.masked_where(~mask, mask)
    ax.imshow(masked, cmap=ListedColormap([color]), alpha=0.75, interpolation="nearest", extent=extent)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    for r, c, text in labels:
        ax.annotate(text, (c, r), color="#ffffff", fontsize=8, ha="left", va="bottom",
                    xytext=(3, 3), textcoords="offset points",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "#000000", "alpha": 0.55, "lw": 0})
    ax.set_xlabel("column (pixels)")
    ax.set_ylabel("row (pixels)")
    ax.set_title(title)
    return fig
