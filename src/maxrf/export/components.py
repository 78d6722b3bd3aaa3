"""Abundance maps and class maps of :mod:`maxrf.decomposition` as TIFF files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.decomposition import Decomposition
from maxrf.errors import OutputLocationError


def _folder(out: str | os.PathLike) -> tuple[Path, bool]:
    out = Path(out)
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputLocationError(f"cannot create the output folder ({exc.strerror})", out) from None
    if not os.access(out, os.W_OK):
        raise OutputLocationError("the output folder is not writable", out)
    return out, existed


def export_decomposition(result: Decomposition, out: str | os.PathLike) -> dict[str, Any]:
    """Write each abundance map as a float32 TIFF and the class map as a uint8 TIFF.

    Parameters
    ----------
    result : Decomposition
        From :func:`maxrf.decomposition.decompose`.
    out : path
        Folder to write into (created if needed).

    Returns
    -------
    dict
        ``{"components": [{"index", "elements", "explained", "map"}], "classes": path or
        None}`` with the paths written.
    """
    import tifffile

    folder, existed = _folder(out)
    written: list[Path] = []
    try:
        comps = []
        for i, els in enumerate(result.elements):
            path = folder / f"component_{i:02d}.tiff"
            img = np.asarray(result.maps[i], dtype=np.float32)
            tifffile.imwrite(path, img, imagej=True, metadata={
                "Info": f"maxrf component {i}: {', '.join(els) or 'no element lines'}; counts",
                "unit": "counts"})
            written.append(path)
            comps.append({"index": i, "elements": list(els),
                          "explained": round(float(result.explained[i]), 3), "map": str(path)})
        classes = None
        if result.clustering is not None:
            path = folder / "classes.tiff"
            labels = np.asarray(result.clustering.labels[:]).astype(np.uint8)
            tifffile.imwrite(path, labels, imagej=True, metadata={
                "Info": f"maxrf material classes 0..{result.clustering.n_classes - 1}"})
            written.append(path)
            classes = str(path)
    except OSError as exc:
        for p in written:
            p.unlink(missing_ok=True)
        if not existed:
            folder.rmdir()
        raise OutputLocationError(f"cannot write the maps ({exc.strerror or exc})", folder) from None
    return {"components": comps, "classes": classes}
