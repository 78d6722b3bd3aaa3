"""The viewer's segmentation payload: class image and particle table of the stored layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from maxrf.viewer.app import encode_map

#: table columns sent to the browser, when present
COLUMNS = ("label", "row_weighted", "col_weighted", "area", "peak", "contrast", "on_stroke")


def payload(ds: Any) -> dict[str, Any]:
    """JSON-ready segmentation of a datastack, or ``{"computed": False, ...}`` without one.

    ``classes`` is encoded like a map (float32 base64: 0 background, 1 extended, 2 particle);
    ``particles`` lists the table's rows (positions in pixels, element columns as stored).
    """
    from maxrf.errors import LayerMissingError

    try:
        layer = ds.read("segmentation")
    except LayerMissingError:
        return {"computed": False, "message": "run `maxrf segment` to segment an element map"}
    a = layer.attrs
    rows = a.get("table", [])
    extra = [k for k in (rows[0] if rows else {}) if k not in COLUMNS
             and k not in ("row", "col", "excess", "significance")]
    return {
        "computed": True,
        "element": a.get("element"),
        "verdict": a.get("verdict"),
        "warnings": list(a.get("warnings", [])),
        "classes": encode_map(np.asarray(layer["classes"], dtype=np.float32)),
        "particles": [{k: r.get(k) for k in (*COLUMNS, *extra) if k in r} for r in rows],
    }
