"""Report section of the stored segmentation: class overlay, verdict and particle table."""

from __future__ import annotations

from typing import Any

import numpy as np

from maxrf.report import figures
from maxrf.report.figures import esc, fmt
from maxrf.report.layers import damaged, load_layer

#: at most this many particles are listed
MAX_ROWS = 300
#: table columns shown first, in this order (element columns follow)
FIRST = ("label", "row_weighted", "col_weighted", "area", "peak", "contrast", "on_stroke")


def section(ds: Any, statuses: dict[str, Any], max_side: int = 800) -> str:
    """HTML of the ``segmentation`` layer (a "not computed" note when it is missing).

    Parameters
    ----------
    ds : DataStack
        The store.
    statuses : dict
        The report's layer statuses; this section records the layer's under ``'segmentation'``.
    max_side : int
        Maps larger than this (pixels) are drawn reduced.
    """
    layer, st = load_layer(ds, "segmentation")
    statuses["segmentation"] = st
    if layer is None:
        return _missing(st)
    h, w = ds.shape[:2]
    classes = np.asarray(layer.get("classes", np.zeros((0, 0))))
    if classes.shape != (h, w):
        statuses["segmentation"] = damaged(st, f"'classes' has shape {classes.shape}, expected ({h}, {w})")
        return _missing(statuses["segmentation"])
    a = layer.attrs
    rows = list(a.get("table", []))
    frac = a.get("evidence", {}).get("class_fractions", {})
    verdict = str(a.get("verdict", ""))
    parts = [
        f"<p data-segmentation='summary'>Map: <b>{esc(a.get('element') or '?')}</b>. "
        f"{len(rows)} particles (circled), strokes and other extended features "
        f"{fmt(100 * float(frac.get('extended', 0.0)), 3)}% of the map (tinted), the rest "
        f"background. Verdict: <b>{esc(verdict)}</b>"
        + ("".join(f"<br>{esc(wt)}" for wt in a.get("warnings", [])))
        + "</p>",
        _figure(ds, classes, layer, a, max_side),
        _table(rows),
        _thresholds(a.get("thresholds", {})),
    ]
    return "".join(parts)


def _missing(status: Any) -> str:
    from maxrf.report.html import _not_computed  # the report's one "not computed" note

    return _not_computed(status)


def _figure(ds: Any, classes: np.ndarray, layer: Any, attrs: dict, max_side: int) -> str:
    from maxrf.plot.segmentation import plot_segmentation
    from maxrf.segmentation import read_segmentation
    from maxrf.speckles import element_map_of

    seg = read_segmentation(ds)
    try:
        image, _ = element_map_of(ds, str(attrs.get("element") or "Fe"))
        image = np.asarray(image, dtype=float)
    except Exception:  # the map was removed since: draw the classes alone
        image = classes.astype(float)
    size = 7.0 if max(classes.shape) <= max_side else 9.0
    fig, _ax = plot_segmentation(image, seg, figsize=(size, size * classes.shape[0] / classes.shape[1] + 0.6))
    uri = figures.figure_png_uri(fig)
    return (f'<img class="segmentation-map" data-segmentation="map" '
            f'alt="strokes tinted and particles circled over the element map" src="{uri}">')


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>No particle.</p>"
    cols = [c for c in FIRST if c in rows[0]] + [
        c for c in rows[0] if c not in FIRST and c not in ("row", "col", "excess", "significance")]
    body = []
    for r in rows[:MAX_ROWS]:
        tds = []
        for c in cols:
            v = r.get(c, "")
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            text = fmt(float(v), 4) if isinstance(v, float) else str(v)
            tds.append(f"<td class='num'>{esc(text)}</td>" if num else f"<td>{esc(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    more = (f"<p class='note'>First {MAX_ROWS} of {len(rows)} particles listed.</p>"
            if len(rows) > MAX_ROWS else "")
    return ('<div class="table-wrap"><table data-segmentation="table"><thead><tr>' + head
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>" + more
            + "<p class='note'>row_weighted, col_weighted: intensity-weighted centroid in pixels "
              "from the top-left corner; contrast: the particle's excess over the paper or stroke "
              "under it, in units of the counting noise; element columns: mean map value over "
              "the particle.</p>")


def _thresholds(thresholds: dict) -> str:
    if not thresholds:
        return ""
    items = "".join(
        f"<li><b>{esc(k)}</b>: {esc(fmt(float(v.get('value', 0)), 3))} {esc(v.get('units', ''))}"
        f" — {esc(v.get('why', ''))}</li>"
        for k, v in thresholds.items() if isinstance(v, dict))
    return f"<details><summary>Thresholds and why</summary><ul>{items}</ul></details>"
