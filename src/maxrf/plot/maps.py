"""Map plots: peak slices on a spectrum, map grids, single maps, speckles.

Every function returns the matplotlib figure and axes it drew on, never calls
``plt.show()``, never blocks and never prompts. A new figure is made with
:mod:`matplotlib.pyplot` (so it shows in a notebook); pass ``ax`` to draw into your own.
Images are drawn as arrays ``(rows, cols)``: row = y downwards, col = x.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import ParameterError
from maxrf.types import ArrayLike

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["multi_plot", "plot_map", "plot_peak_slices", "plot_speckles"]


def _axes(ax: Axes | None, figsize: Sequence[float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(), ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=tuple(figsize))
    return fig, ax


def plot_peak_slices(
    x_keVs: np.ndarray | Sequence[float],
    y_max: np.ndarray | Sequence[float],
    slices: np.ndarray,
    peaks_xy: np.ndarray,
    *,
    ax: Axes | None = None,
    grid: bool = False,
    labels: str = "simple",
    figsize: Sequence[float] = (8, 5),
) -> tuple[Figure, Axes]:
    """Plot a spectrum with its peak slices coloured (maxrf4u's ``plot_peak_slices``).

    Parameters
    ----------
    x_keVs : array_like
        ``(C,)`` channel energies (keV).
    y_max : array_like
        ``(C,)`` spectrum (counts), usually the max spectrum.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.
    grid : bool
        Draw a grid.
    labels : {'simple', 'full'}
        Peak labels ``[i]`` or ``[i]`` with the energy (keV).
    figsize : (float, float)
        Size (inches) of a new figure.
    slices, peaks_xy : array_like
        ``(k, 3)`` channel slices and ``(k, 2)`` peak (keV, counts), as returned by
        :func:`maxrf.maps.get_slices` (or read from the ``peak_maps`` layer). maxrf4u's
        call without them, ``maxrf.plot_peak_slices(x, y)``, is :func:`maxrf.compat.plot_peak_slices`.

    Returns
    -------
    fig, ax

    Raises
    ------
    ParameterError
        ``labels`` is not ``'simple'`` or ``'full'``.
    """
    import matplotlib.cm as cm

    if labels not in ("simple", "full"):
        raise ParameterError(f"labels must be 'simple' or 'full', got {labels!r}")
    x = np.asarray(x_keVs, dtype=float)
    y = np.asarray(y_max, dtype=float)
    peaks_xy = np.asarray(peaks_xy, dtype=float).reshape(-1, 2)
    slices = np.asarray(slices, dtype=int).reshape(-1, 3)
    fig, ax = _axes(ax, figsize)
    ax.plot(x, y, lw=1)
    if labels == "simple":
        peak_labels = [f"[{i}]" for i in range(len(peaks_xy))]
    else:
        peak_labels = [f"[{i}]\n{keV:.03f}keV" for i, (keV, _) in enumerate(peaks_xy)]
    for s, xy in zip(peak_labels, peaks_xy):
        ax.annotate(s, xy, xytext=(0, 10), ha="center", textcoords="offset points")
    if len(peaks_xy):
        ax.scatter(*peaks_xy.T, s=12, zorder=3)
    if grid:
        ax.grid()
    colors = cm.tab20(np.arange(len(slices)) % 20)
    channel = np.arange(x.size)
    for (i, _, k), color in zip(slices, colors):
        ax.fill_between(x, 0, y, where=(channel >= i) & (channel <= k), alpha=0.6, color=color,
                        lw=0)
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts")
    return fig, ax


MANY_IMAGES = 12
"""Above this many images :func:`multi_plot` uses a fixed layout instead of tight_layout."""
PER_ROW = 4
"""Images per row of :func:`multi_plot` (the seed's layout)."""


def multi_plot(
    *images: Any,
    titles: Sequence[str] | None = None,
    axis_off: bool = False,
    fig_width: float = 9,
    sharex: bool = True,
    sharey: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "Greys_r",
    fontsize: str | float = "xx-large",
    zoom_xyc: Sequence[float] | None = None,
    zoom_half_wh: Sequence[float] = (100, 100),
) -> tuple[Figure, np.ndarray]:
    """Show several images side by side, folded into rows of 4 (maxrf4u's ``multi_plot``).

    The time grows in proportion to the number of images (the seed's, drawing each image
    into axes already shared with all the others, grew with its cube: minutes for the
    peak maps of a raw scan).

    Parameters
    ----------
    *images : array_like
        ``(H, W)`` images.
    titles : sequence of str, optional
        One title per image.
    axis_off : bool
        Hide the axes.
    fig_width : float
        Figure width (inches); height ``fig_width / 2 + 2 * (rows - 1)``.
    sharex, sharey : bool
        Share the axes (zooming one zooms all).
    vmin, vmax : float, optional
        Colour limits (image units).
    cmap : str
        Colour map.
    fontsize : str or float
        Title font size.
    zoom_xyc : (float, float), optional
        Centre ``(x, y)`` (pixels) of a zoom window.
    zoom_half_wh : (float, float)
        Half width and height (pixels) of the zoom window.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axs : numpy.ndarray
        ``(rows, cols)`` array of axes (the unused ones are removed from the figure).

    Raises
    ------
    ParameterError
        No image given.
    """
    n_img = len(images)
    if n_img == 0:
        raise ParameterError("multi_plot needs at least one image")
    fig, axs = _image_grid(n_img, fig_width)
    flat = axs.flatten()
    for i, img in enumerate(images):
        flat[i].imshow(np.asarray(img), cmap=cmap, vmin=vmin, vmax=vmax)
    for i, t in enumerate(list(titles or [])[:n_img]):
        flat[i].set_title(t, fontsize=fontsize)
    if axis_off:
        for ax in flat:
            ax.set_axis_off()
    for ax in flat[n_img:]:
        ax.remove()
    _share(flat[:n_img], sharex, sharey)
    if zoom_xyc is not None:
        (xc, yc), (hw, hh) = zoom_xyc, zoom_half_wh
        for ax in flat[:1] if (sharex and sharey) else flat[:n_img]:  # shared: one sets all
            ax.set_xlim(xc - hw, xc + hw)
            ax.set_ylim(yc + hh, yc - hh)
    _layout(fig, n_img)
    return fig, axs


def _image_grid(n_img: int, fig_width: float) -> tuple[Figure, np.ndarray]:
    """The seed's grid of ``n_img`` unshared axes in rows of :data:`PER_ROW`."""
    import matplotlib.pyplot as plt

    nrows = -(-n_img // PER_ROW)
    ncols = min(n_img, PER_ROW)
    figsize = (fig_width, fig_width / 2 + 2 * (nrows - 1))
    return plt.subplots(nrows=nrows, ncols=ncols, figsize=figsize, squeeze=False)


def _share(axes: Sequence[Axes], sharex: bool, sharey: bool) -> None:
    """Share the axes' limits once every image is drawn.

    Axes shared from the start pass every limit change of each new image to all the
    others, so drawing n images costs n² updates; joining them afterwards costs n.
    """
    first = axes[0]
    for ax in axes[1:]:
        if sharex:
            ax.sharex(first)
        if sharey:
            ax.sharey(first)
    for i, ax in enumerate(axes):  # shared limits: tick labels on the outer axes only
        if sharex and i + PER_ROW < len(axes):  # an image below shows them
            ax.xaxis.set_tick_params(which="both", labelbottom=False)
        if sharey and i % PER_ROW:
            ax.yaxis.set_tick_params(which="both", labelleft=False)


def _layout(fig: Figure, n_img: int) -> None:
    fig.subplots_adjust(hspace=0.4, wspace=0.4)
    if n_img <= MANY_IMAGES:
        fig.tight_layout()
    else:  # tight_layout costs seconds per dozen axes: a fixed layout for a big sheet
        fig.subplots_adjust(left=0.04, right=0.98, bottom=0.02, top=0.98, hspace=0.35, wspace=0.25)


def plot_map(
    image: ArrayLike,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    label: str | None = None,
    axis_off: bool = False,
    figsize: Sequence[float] = (6, 5),
) -> tuple[Figure, Axes]:
    """One map with a colour bar and a title.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` map (any units).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.
    title : str, optional
        Title.
    cmap : str
        Colour map.
    vmin, vmax : float, optional
        Colour limits (map units).
    colorbar : bool
        Draw a colour bar.
    label : str, optional
        Colour-bar label (units, e.g. ``'counts'``).
    axis_off : bool
        Hide the axes.
    figsize : (float, float)
        Size (inches) of a new figure.

    Returns
    -------
    fig, ax
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ParameterError(f"plot_map needs a 2-D image, got shape {img.shape}")
    fig, ax = _axes(ax, figsize)
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
    if title:
        ax.set_title(title)
    if colorbar:
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        if label:
            cb.set_label(label)
    if axis_off:
        ax.set_axis_off()
    return fig, ax


def plot_speckles(
    image: ArrayLike,
    centroids: ArrayLike,
    radii: float | ArrayLike = 3.0,
    ax: Axes | None = None,
    *,
    color: str = "r",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    numbers: bool = False,
    title: str | None = None,
    figsize: Sequence[float] = (7, 6),
) -> tuple[Figure, Axes]:
    """A map with its speckles circled.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` map (e.g. the iron peak map).
    centroids : array_like
        ``(n, 2)`` speckle centroids ``[row, col]`` (pixels).
    radii : float or array_like
        Circle radius (pixels), one for all or ``(n,)``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.
    color : str
        Circle colour.
    cmap : str
        Colour map of the image.
    vmin, vmax : float, optional
        Colour limits (map units); e.g. a low ``vmax`` to see faint speckles.
    numbers : bool
        Write each speckle's index (0 = first centroid) beside it.
    title : str, optional
        Title.
    figsize : (float, float)
        Size (inches) of a new figure.

    Returns
    -------
    fig, ax
    """
    from matplotlib.patches import Circle

    img = np.asarray(image)
    if img.ndim != 2:
        raise ParameterError(f"plot_speckles needs a 2-D image, got shape {img.shape}")
    cen = np.asarray(centroids, dtype=float).reshape(-1, 2)
    r = np.broadcast_to(np.asarray(radii, dtype=float), (cen.shape[0],))
    fig, ax = _axes(ax, figsize)
    ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
    for i, ((row, col), rad) in enumerate(zip(cen, r)):
        ax.add_patch(Circle((col, row), rad, fill=False, edgecolor=color, lw=1.2))
        if numbers:
            ax.annotate(str(i), (col + rad, row - rad), color=color, fontsize="small")
    if title:
        ax.set_title(title)
    return fig, ax
