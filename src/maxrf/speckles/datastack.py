"""Speckles of a DataStack: the map of an element or window, and the ``speckles`` layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.compat import PairResult
from maxrf.speckles.atlas import SpeckleAtlas
from maxrf.speckles.table import _noise_level, speckle_table, speckles_above_noise
from maxrf.types import ClientLike

if TYPE_CHECKING:
    from maxrf.store import DataStack


def window_map(ds: DataStack, window: tuple[float, float], client: ClientLike = None
               ) -> tuple[np.ndarray, str]:
    """The peak map (seed formula, counts per channel) of an energy window, one pass.

    Parameters
    ----------
    ds : DataStack
        A calibrated datastack.
    window : (float, float)
        Low and high energy of the window, keV.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W)`` float map.
    source : str
        ``'window 10.30-10.80 keV'``.
    """
    from maxrf import engine
    from maxrf.errors import ParameterError
    from maxrf.maps import PeakSliceMaps

    e = np.asarray(ds.energies(), dtype=float)
    lo, hi = (int(np.searchsorted(e, float(v))) for v in window)
    hi = min(hi, e.size - 1)
    if hi - lo < 2:
        raise ParameterError(f"--window {window[0]}:{window[1]} keV holds fewer than 3 channels "
                             f"of this scan ({e[0]:.2f}-{e[-1]:.2f} keV)")
    red = PeakSliceMaps([[lo, (lo + hi) // 2, hi]], e, kev_maps=False)
    out = engine.run(ds.block_source(), {"window": red}, client=client, description="window map")
    return np.asarray(out["window"][0]), f"window {e[lo]:.2f}-{e[hi]:.2f} keV"


def element_map_of(ds: DataStack, element: str) -> tuple[np.ndarray, str]:
    """The map of ``element`` from a datastack's layers, and where it came from.

    The fitted/window element map (layer ``element_maps``) when it has the element, else the
    peak map (layer ``peak_maps``) whose peak lies nearest the element's Kα (or Lα) line
    within 0.1 keV.

    Raises
    ------
    LayerMissingError
        If neither layer holds a map of the element (run ``maxrf maps`` first).
    """
    from maxrf.errors import LayerMissingError
    from maxrf.physics import line_energy

    layers = ds.layers
    if "element_maps" in layers:
        layer = ds.read("element_maps", lazy=True)  # reads only the map asked for
        elements = list(layer.attrs.get("elements", []))
        if element in elements:
            return layer["maps"][elements.index(element)], f"element map ({layer.attrs.get('method')})"
    if "peak_maps" in layers:
        layer = ds.read("peak_maps", lazy=True)
        for line in ("Ka", "La"):
            try:
                keV = line_energy(element, line)
            except Exception:  # noqa: BLE001 - element without that line family
                continue
            peaks = np.asarray(layer["peaks_keV"])
            if peaks.size and np.min(np.abs(peaks - keV)) < 0.1:
                i = int(np.argmin(np.abs(peaks - keV)))
                return layer["maps"][i], f"peak map {i} at {peaks[i]:.2f} keV"
    raise LayerMissingError(
        f"no map of {element}: run 'maxrf maps --elements {element}' first", ds.path
    )


class _StoredMaps(Mapping):
    """``{element: map}`` over a lazily read ``element_maps`` layer: a map is read when asked
    for, so a table over many elements holds one map at a time."""

    def __init__(self, layer: Any):
        self._maps = layer["maps"]
        self._elements = [str(el) for el in layer.attrs.get("elements", [])]

    def __getitem__(self, element: str) -> np.ndarray:
        try:
            return self._maps[self._elements.index(element)]
        except ValueError:
            raise KeyError(element) from None

    def __iter__(self):
        return iter(self._elements)

    def __len__(self) -> int:
        return len(self._elements)


@dataclass
class SpeckleResult(PairResult):
    """What :func:`find_speckles` found; unpacks as maxrf4u's ``atlas, table``.

    Attributes
    ----------
    atlas : SpeckleAtlas
        The segmentation of the element's map.
    table : dict of str to ndarray
        One row per kept speckle: label, centroid, area, peak and the mean of every
        element map over the speckle.
    element : str
        The element whose map was segmented.
    stored : bool
        Whether the layer ``speckles`` was written.
    """

    atlas: SpeckleAtlas
    table: dict[str, np.ndarray]
    element: str
    stored: bool
    _pair = ("atlas", "table")


def find_speckles(
    ds: DataStack,
    element: str = "Fe",
    *,
    max_area: float = 100,
    n_heights: int = 100,
    factor: float = 3.0,
    store: bool = True,
    window: tuple[float, float] | None = None,
) -> SpeckleResult:
    """Segment the speckles of one element's map and measure them (layer ``speckles``).

    The element must have evidence in the stored identification (present or possible,
    :func:`maxrf.evidence.require_evidence`): a peak window near the element's line on a
    scan without it would be another element's map. ``window`` segments an explicit
    energy window instead, whatever the identification says.

    Parameters
    ----------
    ds : DataStack
        A datastack with element or peak maps.
    element : str
        Element whose map is segmented (default Fe, the paper speckles).
    max_area : float
        Largest speckle area (pixels) at the clip height (see :meth:`SpeckleAtlas.measure_speckles`).
    n_heights : int
        Height levels of the scan.
    factor : float
        Keep speckles whose peak exceeds ``factor`` x the map's noise level.
    store : bool
        Write the layer ``speckles`` to the datastack.
    window : (float, float), optional
        Segment the peak map of this energy window (keV, low and high) instead of the
        element's map; ``element`` then only names the result.

    Returns
    -------
    SpeckleResult
        ``.atlas`` and ``.table`` (one row per kept speckle); ``atlas, table = ...`` works.
    """
    maps: Mapping[str, Any] = {}
    if "element_maps" in ds.layers:  # the table's columns, read one map at a time
        maps = _StoredMaps(ds.read("element_maps", lazy=True))
    from maxrf.evidence import checked_map

    image, source = checked_map(ds, element, window, "speckles")
    atlas = SpeckleAtlas(image, n_heights=n_heights)
    del image  # the atlas holds its float64 copy
    clip = atlas.measure_speckles(max_area=max_area)
    noise = _noise_level(atlas.peak_map)
    keep = speckles_above_noise(atlas, noise, factor=factor)
    table = speckle_table(atlas, maps, labels=keep)
    if store:
        labels = np.where(np.isin(atlas.relabel_image, keep), atlas.relabel_image, 0).astype(np.int32)
        ds.write_layer(
            "speckles",
            {"labels": labels,
             "centroids": np.c_[table["row"], table["col"]] if len(keep) else np.zeros((0, 2)),
             "areas": np.asarray(table["area"], dtype=np.float64),
             "peak_intensity": np.asarray(table["peak"], dtype=np.float64)},
            {"element": element, "source": source, "clip_height": float(clip),
             "max_area": max_area, "noise_level": noise, "factor": factor,
             "table": [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in table.items()}
                       for i in range(len(keep))]},
        )
    return SpeckleResult(atlas, table, element, bool(store))
