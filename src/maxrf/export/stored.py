"""What the exporters share: the stored maps with names and units, and atomic output paths.

Every file export takes the same three arguments: ``source`` (a datastack path or
:class:`maxrf.store.DataStack`), ``out`` (the file to write; default a name beside the
datastack, see :func:`export_path`) and ``overwrite`` (replace an existing file). The file
is written under a hidden temporary name and renamed into place when complete
(:func:`atomic_output`), so an error leaves no partial file and an existing one untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import LayerMissingError, OutputExistsError, ParameterError

__all__ = ["MAP_LAYERS", "MapStack", "atomic_output", "export_path", "map_stack"]

MAP_LAYERS = ("element_maps", "peak_maps")
"""Layers holding ``(k, H, W)`` maps, in the order exports prefer them."""


@dataclass
class MapStack:
    """The maps of one layer: read one at a time (``maps[i]`` reads map ``i``).

    Attributes
    ----------
    layer : str
        ``'element_maps'`` or ``'peak_maps'``.
    names : list of str
        One name per map (element symbol, or peak label such as ``'Fe-Ka 6.40 keV'``).
    units : str
        Units of the map values.
    maps : array-like
        ``(k, H, W)`` float32, read on demand.
    attrs : dict
        The layer's attributes.
    """

    layer: str
    names: list[str]
    units: str
    maps: Any
    attrs: dict[str, Any]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.maps.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.names)

    def get(self, i: int) -> np.ndarray:
        """Map ``i`` as a float32 ``(H, W)`` array."""
        return np.asarray(self.maps[i], dtype=np.float32)


def map_stack(ds: Any, layer: str | None = None) -> MapStack:
    """The stored maps of ``layer`` (default: element maps if present, else peak maps).

    Raises
    ------
    LayerMissingError
        The datastack has no such layer (the message says which command makes it).
    ParameterError
        ``layer`` is not a maps layer.
    """
    present = ds.layers
    if layer is None:
        layer = next((name for name in MAP_LAYERS if name in present), None)
        if layer is None:
            raise LayerMissingError("no maps stored: run 'maxrf maps' first", ds.path)
    if layer not in MAP_LAYERS:
        raise ParameterError(f"maps layer must be one of {', '.join(MAP_LAYERS)}, got {layer!r}")
    stored = ds.read(layer, lazy=True)  # raises LayerMissingError naming what is present
    attrs = dict(stored.attrs)
    maps = stored["maps"]
    if layer == "element_maps":
        names = [str(e) for e in attrs.get("elements", [])]
        units = str(attrs.get("units", "counts per pixel"))
    else:
        labels = [str(x) for x in attrs.get("labels", [])]
        kev = np.asarray(stored["peaks_keV"]) if "peaks_keV" in stored else np.array([])
        names = [f"{lab} {kev[i]:.2f} keV" if i < kev.size else lab for i, lab in enumerate(labels)]
        units = str(attrs.get("units", "counts per channel"))
    k = int(maps.shape[0])
    if len(names) != k:  # a layer without usable names still exports, numbered
        names = [f"map {i}" for i in range(k)]
    return MapStack(layer, names, units, maps, attrs)


def export_path(ds: Any, out: str | os.PathLike | None, default_name: str) -> Path:
    """``out``, or the file ``default_name`` beside the datastack."""
    return Path(out) if out is not None else ds.path.with_name(default_name)


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``out``; on success it replaces ``out``.

    On any error (or Ctrl-C) the temporary file or folder is removed and an existing
    ``out`` is left as it was.
    """
    from maxrf.outputs import check_new_output
    from maxrf.store import disk_errors

    out = check_new_output(out, overwrite)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        with disk_errors(out):
            yield tmp
            if out.is_dir() and not tmp.is_dir():
                raise OutputExistsError("is a folder; refusing to replace it with a file", out)
            if out.is_dir():
                shutil.rmtree(out)
            os.replace(tmp, out)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
