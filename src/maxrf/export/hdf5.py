"""Maps and spectra (and optionally the cube) as one plain HDF5 file, with attributes.

Layout (every dataset carries ``units``; h5py, HDFView, PyMca, MATLAB read it)::

    /                         attrs: source datastack, shape [H, W, C], maxrf version,
                              gain_keV, offset_keV, calibration method
    /spectra/energy_keV       (C,) energy of each channel (if calibrated)
    /spectra/mean             (C,) mean spectrum over all pixels, counts per pixel
    /spectra/max              (C,) per channel maximum over all pixels, counts
    /maps/<layer>/<name>      (H, W) float32 one map per element / peak; attrs: units,
                              index, layer, name
    /maps/<layer>/stack       (k, H, W) the same maps as one stack; attrs: names, units
    /cube                     (H, W, C) only with ``cube=True``: written block by block
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.export.stored import MAP_LAYERS, atomic_output, export_path, map_stack
from maxrf.store import open_datastack

__all__ = ["export_hdf5"]


def export_hdf5(source: Any, out: str | os.PathLike | None = None, *, cube: bool = False,
                overwrite: bool = False) -> Path:
    """Write the spectra, every stored map layer (and the cube) to an HDF5 file.

    Parameters
    ----------
    source, out, overwrite
        The datastack, the file (default ``NAME.h5`` beside it) and whether to replace an
        existing one (see :mod:`maxrf.export.stored`).
    cube : bool
        Also write the cube, chunked as stored, one block at a time (gzip level 1).

    Returns
    -------
    pathlib.Path
        The HDF5 file written.
    """
    import h5py

    from maxrf import __version__

    ds = open_datastack(source)
    out = export_path(ds, out, ds.path.stem + ".h5")
    cal = ds.calibration
    with atomic_output(out, overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"source": str(ds.path.resolve()), "shape": list(ds.shape),
                        "maxrf_version": __version__, "created_by": "maxrf export --to h5"})
        spectra = f.create_group("spectra")
        if cal is not None:
            f.attrs.update(gain_keV=float(cal["gain_keV"]), offset_keV=float(cal["offset_keV"]),
                           calibration_method=str(cal.get("method", "")))
            spectra.create_dataset("energy_keV", data=np.asarray(ds.energies)).attrs["units"] = "keV"
        spectra.create_dataset("mean", data=np.asarray(ds.sum_spectrum)).attrs.update(
            units="counts per pixel", description="mean spectrum over all pixels")
        spectra.create_dataset("max", data=np.asarray(ds.max_spectrum)).attrs.update(
            units="counts", description="per channel maximum over all pixels")
        for layer in MAP_LAYERS:
            if layer in ds.layers:
                _write_maps(f, map_stack(ds, layer))
        if cube:
            _write_cube(f, ds)
    return out


def _write_maps(f: Any, stack: Any) -> None:
    group = f.create_group(f"maps/{stack.layer}")
    k, h, w = stack.shape
    whole = group.create_dataset("stack", shape=(k, h, w), dtype=np.float32, chunks=(1, h, w))
    whole.attrs.update(names=list(stack.names), units=stack.units, layer=stack.layer)
    used: set[str] = set()
    for i, name in enumerate(stack.names):
        data = stack.get(i)  # one map in memory at a time
        whole[i] = data
        key = name.replace("/", "-")
        key = key if key not in used else f"{key} ({i})"
        used.add(key)
        d = group.create_dataset(key, data=data)
        d.attrs.update(units=stack.units, index=i, layer=stack.layer, name=name)


def _write_cube(f: Any, ds: Any) -> None:
    h, w, c = ds.shape
    chunks = tuple(min(s, k) for s, k in zip(ds.shape, ds.chunks))
    d = f.create_dataset("cube", shape=(h, w, c), dtype=ds.dtype, chunks=chunks,
                         compression="gzip", compression_opts=1, shuffle=True)
    d.attrs.update(units="counts", axes=["row", "col", "channel"])
    source = ds.block_source()
    for block in source.blocks():
        d[block.rows, block.cols, :] = source.read_block(block)
