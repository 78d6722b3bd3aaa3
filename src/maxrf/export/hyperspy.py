"""The cube and the maps for HyperSpy: ``.hspy`` (HDF5) via rosettasciio.

Written with rosettasciio's own writer (``rsciio.hspy``) from the cube as a dask array,
so the cube streams chunk by chunk (chunks of pixels with all
their channels, as stored) and is never held in memory. HyperSpy opens the result
lazily, ``hs.load(path, lazy=True)``, as a ``Signal1D`` whose axes are ``y`` and ``x``
(pixels, navigation) and ``Energy`` (keV, calibrated: ``offset + scale * channel``).
The maps, when the datastack has them, go to ``NAME_maps.hspy``: a
``Signal2D`` stack ``(map, y, x)`` whose map names and units are in
``metadata.Sample.elements`` (element maps) and ``original_metadata.maps``.

``.zspy`` (HyperSpy's zarr format) is refused with one line saying why (:func:`zspy_refusal`):
rosettasciio 0.15, the newest release, writes it through zarr-2 classes
(``NestedDirectoryStore``) that zarr 3, which maxrf's store needs, no longer has; zarr 3
support is an open pull request (hyperspy/rosettasciio#539). ``.hspy`` opens just as lazily.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import LayerMissingError, ParameterError
from maxrf.export.stored import atomic_output, map_stack
from maxrf.store import open_datastack

__all__ = ["FORMATS", "export_hyperspy", "zspy_refusal"]

FORMATS = ("hspy", "zspy")


def zspy_refusal() -> str:
    """Why ``--to zspy`` is refused, and what to use instead (one line)."""
    from importlib.metadata import version  # zarr itself is the store's business

    return (f"--to zspy: rosettasciio {version('rosettasciio')} writes .zspy only with zarr 2 (its "
            f"writer needs zarr.storage.NestedDirectoryStore, gone in zarr {version('zarr')}, "
            "which maxrf's store needs; zarr 3 support is an open rosettasciio pull request, "
            "#539); use --to hspy (HyperSpy opens it lazily too) or --to h5")


def _package_info() -> dict[str, str]:
    from maxrf import __version__

    return {"package": "maxrf", "package_version": __version__}


def _signal(data: Any, axes: list[dict[str, Any]], title: str, signal_type: str, quantity: str,
            original: dict[str, Any], extra_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata = {"General": {"title": title},
                "Signal": {"signal_type": signal_type, "quantity": quantity},
                **(extra_metadata or {})}
    return {"data": data, "axes": axes, "metadata": metadata, "original_metadata": original,
            "attributes": {"_lazy": True}, "learning_results": {}, "models": {},
            "package_info": _package_info(), "tmp_parameters": {}}


def _cube_signal(ds: Any) -> dict[str, Any]:
    h, w, c = ds.shape
    cal = ds.calibration
    energy = {"name": "Energy", "units": "keV", "navigate": False, "size": c,
              "scale": float(cal["gain_keV"]) if cal else 1.0,
              "offset": float(cal["offset_keV"]) if cal else 0.0}
    if cal is None:
        energy.update(name="Channel", units="channel")
    axes = [{"name": "y", "units": "px", "navigate": True, "size": h, "scale": 1.0, "offset": 0.0},
            {"name": "x", "units": "px", "navigate": True, "size": w, "scale": 1.0, "offset": 0.0},
            energy]
    original = {"maxrf_metadata_json": json.dumps(ds.metadata, default=str),
                "calibration_json": json.dumps(cal, default=str)}
    return _signal(ds.cube, axes, ds.path.stem, "", "X-rays (Counts)", original)


def _maps_signal(ds: Any, layer: str | None) -> dict[str, Any]:
    import dask
    import dask.array as da

    stack = map_stack(ds, layer)
    k, h, w = stack.shape
    parts = [da.from_delayed(dask.delayed(stack.get)(i), shape=(h, w), dtype=np.float32)
             for i in range(k)]
    axes = [{"name": "map", "units": "", "navigate": True, "size": k, "scale": 1.0, "offset": 0.0},
            {"name": "y", "units": "px", "navigate": False, "size": h, "scale": 1.0, "offset": 0.0},
            {"name": "x", "units": "px", "navigate": False, "size": w, "scale": 1.0, "offset": 0.0}]
    original = {"maps": {"layer": stack.layer, "names": list(stack.names), "units": stack.units,
                         "attrs_json": json.dumps(stack.attrs, default=str)}}
    extra = {"Sample": {"elements": list(stack.names)}} if stack.layer == "element_maps" else None
    return _signal(da.stack(parts), axes, f"{ds.path.stem} {stack.layer}", "", stack.units,
                   original, extra)


def _write(fmt: str, path: Path, signal: dict[str, Any]) -> None:
    from rsciio.hspy import file_writer

    file_writer(str(path), signal, show_progressbar=False)


def export_hyperspy(
    source: Any,
    out: str | os.PathLike | None = None,
    *,
    fmt: str = "hspy",
    maps: bool | None = None,
    layer: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the cube (and the maps) as HyperSpy files.

    Parameters
    ----------
    source : path or DataStack
        The datastack.
    out : path, optional
        The cube's file (default ``NAME.zspy`` / ``NAME.hspy`` beside the datastack);
        the maps go to ``<out stem>_maps.<fmt>`` next to it.
    fmt : {'hspy', 'zspy'}
        HDF5 (opens lazily, chunk by chunk); ``'zspy'`` raises (see the module docstring).
    maps : bool, optional
        Also export the maps; default: when the datastack has maps.
    layer : {'element_maps', 'peak_maps'}, optional
        Which maps (default element maps if present, else peak maps).
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    list of pathlib.Path
        The files written (cube first).

    Raises
    ------
    ParameterError
        Unknown ``fmt``, or ``'zspy'`` (not writable with zarr 3 by rosettasciio 0.15).
    LayerMissingError
        ``maps=True`` but no maps are stored.
    OutputExistsError, OutputLocationError, DiskFullError
        The output cannot be written; nothing is left behind.
    """
    if fmt not in FORMATS:
        raise ParameterError(f"HyperSpy format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "zspy":
        raise ParameterError(zspy_refusal())
    ds = open_datastack(source)
    out = Path(out) if out is not None else ds.path.with_suffix(f".{fmt}")
    if out.suffix != f".{fmt}":
        out = out.with_name(out.name + f".{fmt}")
    written = []
    with atomic_output(out, overwrite) as tmp:
        _write(fmt, tmp, _cube_signal(ds))
    written.append(out)
    has_maps = any(name in ds.layers for name in ("element_maps", "peak_maps"))
    if maps or (maps is None and has_maps):
        if not has_maps and layer is None:
            raise LayerMissingError("no maps stored: run 'maxrf maps' first", ds.path)
        maps_out = out.with_name(f"{out.stem}_maps.{fmt}")
        with atomic_output(maps_out, overwrite) as tmp:
            _write(fmt, tmp, _maps_signal(ds, layer))
        written.append(maps_out)
    return written
