"""Writing the peak_maps / element_maps layers; the identified elements of a scan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.errors import LayerMissingError
from maxrf.maps.results import ElementMaps, PeakMaps
from maxrf.maps.slices import AUTO_SIGMA


def _peak_small_arrays(peaks: PeakMaps) -> dict[str, np.ndarray]:
    return {"slices": np.asarray(peaks.slices, dtype=np.int64).reshape(-1, 3),
            "peaks_keV": np.asarray(peaks.peaks_keV, dtype=np.float64),
            "peaks_height": np.asarray(peaks.peaks_xy[:, 1] if peaks.peaks_xy.size else [], float)}


def _prominence_value(prominence: Any) -> float | None:
    return None if prominence is None or np.ndim(prominence) else float(prominence)


def _peak_attrs(peaks: PeakMaps) -> dict[str, Any]:
    rule = (f"{AUTO_SIGMA:g} x the local counting noise of the max spectrum"
            if peaks.prominence is None else f"{peaks.prominence:g} counts")
    return {"labels": list(peaks.labels), "norm": bool(peaks.norm),
            "prominence": peaks.prominence, "prominence_rule": rule,
            "rel_height": float(peaks.rel_height),
            "formula": "sum(x[si:sk+1])/(sk-si) - (x[si]+x[sk])/2",
            "units": "relative (map / max)" if peaks.norm else "counts per channel"}


def write_peak_maps(ds: Any, peaks: PeakMaps) -> None:
    """Write the ``peak_maps`` layer (schema in docs/ARCHITECTURE.md)."""
    ds.write_layer(
        "peak_maps",
        {"maps": np.asarray(peaks.maps, dtype=np.float32),
         "keV_maps": np.asarray(peaks.keV_maps, dtype=np.float32),
         **_peak_small_arrays(peaks)},
        _peak_attrs(peaks),
    )


def write_element_maps(ds: Any, em: ElementMaps) -> None:
    """Write the ``element_maps`` layer (schema in docs/ARCHITECTURE.md)."""
    ds.write_layer("element_maps",
                   {"maps": np.asarray(em.maps, dtype=np.float32),
                    "chi2": np.asarray(em.chi2, dtype=np.float32)},
                   em.attrs())


def identified_elements(ds: Any) -> list[str]:
    """Elements with status ``'present'`` in the ``identification`` layer.

    Raises
    ------
    LayerMissingError
        If the scan has not been identified (run ``maxrf identify`` first).
    """
    if "identification" not in ds.layers:
        raise LayerMissingError(
            "no 'identification' layer: run 'maxrf identify' first (or give --elements Fe,Cu,...)",
            ds.path,
        )
    attrs = ds.read("identification").attrs
    out = []
    for entry in attrs.get("elements", []):
        if isinstance(entry, Mapping) and entry.get("status") == "present" and entry.get("element"):
            out.append(physics.normalize_element(entry["element"]))
    return list(dict.fromkeys(out))
