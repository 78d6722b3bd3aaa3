"""Plot of a segmentation: the map, its strokes in colour and its particles circled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import ParameterError
from maxrf.plot.maps import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_segmentation"]


def plot_segmentation(
    image: Any,
    segmentation: Any,
    ax: Axes | None = None,
    *,
    stroke_color: Sequence[float] = (0.1, 0.6, 1.0),
    particle_color: str = "r",
    cmap: str = "gray",
    title: str | None = None,
    figsize: Sequence[float] = (7, 6),
) -> tuple[Figure, Axes]:
    """The map in grey with the extended class (strokes) tinted and the particles circled.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` map that was segmented (map units; shown histogram-equalised).
    segmentation : maxrf.segmentation.Segmentation
        Its segmentation (classes and particle table).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure otherwise.
    stroke_color : (float, float, float)
        RGB (0..1) of the stroke tint (drawn at 45% opacity).
    particle_color : str
        Colour of the particle circles (radius: the particle's equivalent radius + 1 px).
    cmap : str
        Colour map of the image.
    title : str, optional
        Title; default says how many particles and what share of strokes.
    figsize : (float, float)
        Size (inches) of a new figure.

    Returns
    -------
    fig, ax
    """
    from matplotlib.patches import Circle

    from maxrf.maps import histeq

    img = np.asarray(image, dtype=float)
    classes = np.asarray(segmentation.classes)
    if img.ndim != 2 or img.shape != classes.shape:
        raise ParameterError(
            f"plot_segmentation needs a 2-D image of the classes' shape {classes.shape}, "
            f"got {img.shape}")
    fig, ax = _axes(ax, figsize)
    ax.imshow(histeq(img), cmap=cmap, interpolation="nearest")
    tint = np.zeros((*classes.shape, 4))
    tint[..., :3] = stroke_color
    tint[..., 3] = np.where(classes == 1, 0.45, 0.0)
    ax.imshow(tint, interpolation="nearest")
    cen = segmentation.centroids_rc
    for (row, col), rad in zip(cen, segmentation.radii):
        ax.add_patch(Circle((col, row), rad + 1.0, fill=False, edgecolor=particle_color, lw=1.2))
    if title is None:
        title = (f"{segmentation.element or 'map'}: {segmentation.n_particles} particles (circled), "
                 f"strokes {100 * float(np.mean(classes == 1)):.1f}% (tinted)")
    ax.set_title(title, fontsize="medium")
    ax.set_axis_off()
    return fig, ax
