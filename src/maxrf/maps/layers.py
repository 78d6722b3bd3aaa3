"""Writing the peak_maps / element_maps layers; the identified elements of a scan."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.errors import LayerMissingError, ParameterError
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


#: statuses of an identification entry that mean the element is not in the sample
ABSENT_STATUSES = frozenset({"absent", "rejected", "not detected", "not_detected", "excluded", "no"})
_SYMBOL = re.compile(r"^\s*([A-Z][a-z]?)(?![a-z])")


def element_of(label: Any) -> str | None:
    """The element a label names (``'Fe'``, ``'Fe Ka'``, ``'Fe_Ka'``, ``'Pb-L'``), or None."""
    if not isinstance(label, str):
        return None
    with contextlib.suppress(ParameterError):  # a bare symbol, any case ('pb')
        return physics.normalize_element(label.strip())
    m = _SYMBOL.match(label)
    if not m:
        return None
    try:
        return physics.normalize_element(m.group(1))
    except Exception:
        return None


def identification_entries(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The elements of an ``identification`` layer's attributes, normalised.

    Returns
    -------
    list of dict or None
        ``{element, status, confidence, present, lines}`` per recognised entry (a bare
        symbol counts as ``'present'``; ``present`` is False for the
        :data:`ABSENT_STATUSES`, so ``'possible'`` elements are shown); None when the
        ``elements`` attribute is not a list (a damaged layer).
    """
    raw = attrs.get("elements")
    if not isinstance(raw, list):
        return None
    out = []
    for item in raw:
        if isinstance(item, str):
            item = {"element": item}
        if not isinstance(item, Mapping):
            continue
        el = element_of(str(item.get("element", "")))
        if el is None:
            continue
        st = str(item.get("status", "present"))
        try:
            conf = float(item["confidence"]) if item.get("confidence") is not None else None
        except (TypeError, ValueError):
            conf = None
        if conf is not None and not math.isfinite(conf):
            conf = None
        lines = item.get("lines") if isinstance(item.get("lines"), list) else []
        out.append({"element": el, "status": st, "confidence": conf,
                    "present": st.strip().lower() not in ABSENT_STATUSES, "lines": lines})
    return out


def identified_elements(ds: Any) -> list[str]:
    """Elements with status ``'present'`` in the ``identification`` layer (in its order).

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
    entries = identification_entries(ds.read("identification").attrs) or []
    return list(dict.fromkeys(e["element"] for e in entries if e["status"] == "present"))
