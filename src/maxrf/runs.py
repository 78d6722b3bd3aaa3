"""Stored element maps accumulate by element, and say which run each map comes from.

``maxrf maps --elements Fe`` after a run that mapped eight elements replaces the Fe map
only: :func:`keep_previous` reads the stored maps of the other elements before the new
pass overwrites the layer, and :func:`merge_element_maps` writes them back beside the new
ones, with per-element provenance in the layer's ``runs`` attribute
(``{element: {"run": ISO time, "method": ..., ...}}``). The result's ``replaced`` and
``kept`` lists let the CLI say what happened in one line; the report labels each map
with its run.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RUN_KEYS = ("method", "fwhm_at_6keV", "theta_deg", "anode", "tube_kv", "energy_range")
"""Attributes of a run kept per element when maps of several runs share the layer."""


@dataclass
class KeptMaps:
    """Maps of a previous run kept for the elements a new run does not recompute."""

    elements: list[str] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    previous: list[str] = field(default_factory=list)


@dataclass
class MergeReport:
    """What storing a run's element maps did to the ``element_maps`` layer."""

    run: str
    new: list[str]
    replaced: list[str]
    kept: list[str]

    def line(self) -> str:
        """One line for people: ``'element maps: Fe replaced (new run); kept Cu, Zn'``."""
        parts = []
        added = [el for el in self.new if el not in self.replaced]
        if self.replaced:
            parts.append(f"replaced the stored {', '.join(self.replaced)} map"
                         f"{'s' if len(self.replaced) > 1 else ''}")
        if added:
            parts.append(f"added {', '.join(added)}")
        if self.kept:
            parts.append(f"kept {', '.join(self.kept)} from earlier runs")
        return f"element maps (run {self.run}): " + "; ".join(parts)


def now() -> str:
    """The run's name: its UTC start time, to the second (``2026-12-02T20:01:05Z``)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runs_of(attrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{element: run info}`` of a stored ``element_maps`` layer (older layers: one run)."""
    elements = [str(el) for el in attrs.get("elements", [])]
    stored = attrs.get("runs")
    if isinstance(stored, dict):
        return {el: dict(stored.get(el, {})) for el in elements}
    run = {k: attrs[k] for k in RUN_KEYS if k in attrs}
    run.setdefault("run", "earlier run")
    return {el: dict(run) for el in elements}


def keep_previous(ds: Any, new_elements: list[str]) -> KeptMaps:
    """Read the stored maps of the elements a new run will not recompute (one map at a time)."""
    kept = KeptMaps()
    if "element_maps" not in ds.layers:
        return kept
    layer = ds.read("element_maps", lazy=True)
    kept.previous = [str(el) for el in layer.attrs.get("elements", [])]
    runs = runs_of(dict(layer.attrs))
    for i, el in enumerate(kept.previous):
        if el in new_elements:
            continue
        kept.elements.append(el)
        kept.maps.append(np.asarray(layer["maps"][i], dtype=np.float32))
        kept.runs[el] = runs[el]
    return kept


def merged_attrs(attrs: dict[str, Any], kept: KeptMaps, run: str) -> dict[str, Any]:
    """The ``element_maps`` attributes of a new run's maps followed by the kept ones: the
    element list of both, each element's run, and the run the chi-square map is from."""
    out = dict(attrs)
    new = [str(el) for el in attrs.get("elements", [])]
    this = {k: attrs[k] for k in RUN_KEYS if k in attrs}
    this["run"] = run
    runs = {el: dict(this) for el in new}
    runs.update(kept.runs)
    out["elements"] = new + kept.elements
    out["runs"] = runs
    out["chi2_run"] = run
    return out


def report(new: list[str], kept: KeptMaps, run: str) -> MergeReport:
    """What storing ``new`` beside ``kept`` did, for the one-line message."""
    return MergeReport(run=run, new=list(new), replaced=[el for el in new if el in kept.previous],
                       kept=list(kept.elements))


class HeadMaps:
    """The first ``k`` maps of a stored ``(n, H, W)`` layer array (a run's own maps when
    earlier runs' maps follow them), read on demand like the array itself."""

    def __init__(self, array: Any, k: int):
        self._array = array
        self._k = int(k)
        self.shape = (self._k, *tuple(array.shape[1:]))
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self._k

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            if not -self._k <= key < self._k:
                raise IndexError(key)
            return self._array[int(key) % self._k]
        return np.asarray(self)[key]

    def __iter__(self):
        for i in range(self._k):
            yield self._array[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self._array[: self._k])
        return out if dtype is None else out.astype(dtype)
