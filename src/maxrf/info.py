"""A plain description of a datastack (what ``maxrf info`` prints)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.store import DataStack, layer_shapes, store_state


def folder_bytes(path: Path) -> int:
    """Total size in bytes of the files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Shape, dtype, chunking, compression ratio, calibration, layers and provenance.

    Returns
    -------
    dict
        JSON-safe: ``shape`` [H, W, C], ``dtype``, ``chunks``, ``n_chunks``,
        ``stored_bytes``, ``compression_ratio`` (uncompressed cube / stored cube),
        ``calibration`` (``gain_keV``, ``offset_keV``, ``method``) or None, ``layers``,
        ``layer_shapes``, ``provenance``, ``created``, ``maxrf_version``.
    """
    ds = DataStack(path)
    state = store_state(ds.path)  # once: layers, shapes and provenance from one state
    h, w, c = ds.shape
    cube_bytes = folder_bytes(ds.path / "cube")
    raw = h * w * c * ds.dtype.itemsize
    cal = ds.calibration
    layers = state.layers
    shapes = {name: layer_shapes(ds.path, entry) for name, entry in sorted(layers.items())}
    n_chunks = int(np.ceil(h / ds.chunks[0]) * np.ceil(w / ds.chunks[1]))
    return {
        "path": str(ds.path),
        "shape": [h, w, c],
        "dtype": str(ds.dtype),
        "chunks": list(ds.chunks),
        "n_chunks": n_chunks,
        "stored_bytes": folder_bytes(ds.path),
        "compression_ratio": raw / cube_bytes if cube_bytes else None,
        "calibration": None if cal is None else {
            "gain_keV": cal["gain_keV"], "offset_keV": cal["offset_keV"],
            "method": cal.get("method"),
            "quality": cal.get("quality"),
            "checks": [c for c in cal.get("checks") or [] if isinstance(c, dict)],
        },
        "layers": sorted(layers),
        "layer_shapes": shapes,
        "provenance": state.metadata,
        "created": state.created,
        "maxrf_version": state.maxrf_version,
    }

