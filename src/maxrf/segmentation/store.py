"""Segmentation of a datastack's element map: the stored layer ``segmentation``, the class TIFF."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import OutputExistsError, OutputLocationError, ParameterError
from maxrf.segmentation.result import Segmentation
from maxrf.segmentation.segment import segment_map
from maxrf.store import open_datastack

__all__ = ["read_segmentation", "segment_datastack", "write_classes_tiff"]

#: name of the stored layer
LAYER = "segmentation"


def segment_datastack(ds: Any, element: str = "Fe", *, store: bool = True,
                      window: tuple[float, float] | None = None,
                      **options: Any) -> Segmentation:
    """Segment one element's map of a datastack (layer ``segmentation`` when ``store``).

    The element must have evidence in the stored identification (present or possible,
    :func:`maxrf.evidence.require_evidence`): the peak map near the line of an element the
    scan does not hold is another element's map. ``window`` segments an explicit energy
    window instead, whatever the identification says.

    Parameters
    ----------
    ds : DataStack or str or os.PathLike
        A datastack with element maps (``maxrf maps``) or peak maps.
    element : str
        Element whose map is segmented (default Fe: ink strokes and iron speckles).
    store : bool
        Write the layer ``segmentation``: arrays ``classes`` (uint8, 0 background,
        1 extended, 2 particle) and ``labels`` (int32 particle labels), attributes
        :meth:`Segmentation.to_dict` plus ``source`` (which map was segmented).
    **options
        Passed to :func:`maxrf.segmentation.segment_map` (``max_radius``, ``significance``...).

    Returns
    -------
    Segmentation
        With one table column per stored element map (its mean over each particle).

    Raises
    ------
    EvidenceError
        The identification finds no evidence of ``element`` (and no ``window`` was given).
    LayerMissingError
        No map of ``element`` in the datastack (run ``maxrf maps`` first).
    """
    from maxrf.evidence import checked_map
    from maxrf.speckles.datastack import _StoredMaps

    ds = open_datastack(ds)
    image, source = checked_map(ds, element, window, "segmentation")
    others: Mapping[str, Any] = {}
    if "element_maps" in ds.layers:
        others = _StoredMaps(ds.read("element_maps", lazy=True))
    seg = segment_map(np.asarray(image), other_maps=others, element=element, **options)
    seg.evidence["source"] = source
    if store:
        attrs = seg.to_dict()
        ds.write_layer(LAYER, {"classes": seg.classes, "labels": seg.labels}, attrs)
    return seg


def read_segmentation(ds: Any) -> Segmentation:
    """The stored segmentation of a datastack (layer ``segmentation``), as a Segmentation."""
    layer = open_datastack(ds).read(LAYER)
    attrs = layer.attrs
    rows = attrs.get("table", [])
    keys = list(rows[0]) if rows else ["label", "row", "col", "row_weighted", "col_weighted",
                                       "area", "peak"]
    table = {k: np.array([r[k] for r in rows]) for k in keys}
    return Segmentation(np.asarray(layer["classes"], dtype=np.uint8),
                        np.asarray(layer["labels"], dtype=np.int32), table,
                        attrs.get("thresholds", {}), attrs.get("evidence", {}),
                        attrs.get("verdict", "ok"), list(attrs.get("warnings", [])),
                        attrs.get("element"))


def write_classes_tiff(classes: Segmentation | np.ndarray, path: str | os.PathLike, *,
                       overwrite: bool = False) -> Path:
    """Write the class image as a uint8 TIFF of the map's shape (0 background, 1 extended,
    2 particle); written to a temporary file and renamed, so no partial file is left.

    Raises
    ------
    OutputExistsError
        The file exists and ``overwrite`` is False.
    OutputLocationError
        The folder does not exist or cannot be written.
    """
    import tifffile

    arr = classes.classes if isinstance(classes, Segmentation) else np.asarray(classes)
    if arr.ndim != 2:
        raise ParameterError(f"a class image is 2-D, got shape {arr.shape}")
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputLocationError("the output folder does not exist", path.parent)
    if path.exists() and not overwrite:
        raise OutputExistsError("file exists (pass overwrite=True to replace it)", path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tifffile.imwrite(tmp, arr.astype(np.uint8), photometric="minisblack",
                         description="maxrf classes: 0 background, 1 extended, 2 particle")
        os.replace(tmp, path)
    except PermissionError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputLocationError(f"cannot write ({exc.strerror})", path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
