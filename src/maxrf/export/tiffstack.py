"""Element maps as one multi-page TIFF for Fiji / ImageJ (a stack with named slices).

One float32 page per map, written as an ImageJ hyperstack (``axes='ZYX'``) by tifffile,
page by page (one map in memory at a time). The ImageJ metadata carries the slice
labels (``Labels``: ``'Fe (counts per pixel)'``...), ``unit`` ``'pixel'`` for the
image axes, and ``Info`` text with the layer, units, names and source; Fiji shows the
label of each slice and *Image > Show Info* the rest. tifffile reads it back as
``TiffFile.imagej_metadata``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.export.stored import atomic_output, export_path, map_stack
from maxrf.store import open_datastack

__all__ = ["export_tiff_stack"]


def export_tiff_stack(source: Any, out: str | os.PathLike | None = None, *, layer: str | None = None,
                      overwrite: bool = False) -> Path:
    """Write the maps of a layer as a Fiji-readable multi-page TIFF.

    Parameters
    ----------
    source, out, overwrite
        The datastack, the file (default ``NAME_<layer>.tif`` beside it) and whether to
        replace an existing one (see :mod:`maxrf.export.stored`).
    layer : {'element_maps', 'peak_maps'}, optional
        Default: element maps if present, else peak maps.

    Returns
    -------
    pathlib.Path
        The TIFF written.
    """
    import tifffile

    ds = open_datastack(source)
    stack = map_stack(ds, layer)
    k, h, w = stack.shape
    out = export_path(ds, out, f"{ds.path.stem}_{stack.layer}.tif")
    labels = [f"{name} ({stack.units})" for name in stack.names]
    info = "\n".join([f"maxrf {stack.layer}", f"source: {ds.path.resolve()}", f"units: {stack.units}",
                      "maps: " + ", ".join(stack.names)])
    metadata = {"axes": "ZYX", "Labels": labels, "unit": "pixel", "Info": info}
    pages = (stack.get(i) for i in range(k))
    with atomic_output(out, overwrite) as tmp:
        tifffile.imwrite(tmp, pages, shape=(k, h, w), dtype=np.float32, imagej=True,
                         metadata=metadata)
    return out
