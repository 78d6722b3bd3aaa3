"""The report's speckle section: the map of the speckles and their table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maxrf.plot import images
from maxrf.report import figures
from maxrf.report.figures import esc, fmt
from maxrf.report.html import _not_computed, _num, _plain, element_of_attr
from maxrf.report.layers import (
    MapEntry,
    MapView,
    color_hex,
    damaged,
    load_layer,
)

#: at most this many speckle table rows are listed
MAX_SPECKLE_ROWS = 300


class SpeckleSection:
    """Sections of :class:`maxrf.report.build._Report` (uses its ``ds``, ``statuses``,
    ``energies``, ``unit``, ``markers``, ``max_map_side`` and ``entries()``)."""

    def speckles(self) -> str:
        layer, st = load_layer(self.ds, "speckles")
        if layer is None:
            return _not_computed(st)
        h, w = self.ds.shape[:2]
        labels = np.asarray(layer.get("labels", np.zeros((0, 0))))
        if labels.shape != (h, w):
            self.statuses["speckles"] = damaged(st, f"'labels' has shape {labels.shape}, expected ({h}, {w})")
            return _not_computed(self.statuses["speckles"])
        a = layer.attrs
        element = element_of_attr(a.get("element"))
        rows = _speckle_rows(layer)
        parts = []
        info = []
        if element:
            info.append(f"map: <b>{esc(a.get('element'))}</b>")
        for key, label in (
            ("clip_height", "clip height"),
            ("max_area", "largest area allowed (pixels)"),
            ("noise_level", "noise level"),
        ):
            if isinstance(a.get(key), (int, float)):
                info.append(f"{label}: {fmt(float(a[key]), 3)}")
        parts.append(
            f"<p>{len(rows)} speckles (small bright regions such as pigment grains)"
            + (" — " + "; ".join(info) if info else "")
            + ".</p>"
        )
        parts.append(_speckle_figure(labels, rows, element, self.entries()[0], self.max_map_side))
        if rows:
            cols: list[str] = []
            for r in rows:
                cols.extend(k for k in r if k not in cols)
            body = []
            for r in rows[:MAX_SPECKLE_ROWS]:
                tds = []
                for k in cols:
                    v = r.get(k, "")
                    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                        tds.append(
                            f"<td class='num'>{esc(fmt(float(v), 4) if isinstance(v, float) else v)}</td>"
                        )
                    else:
                        tds.append(f"<td>{esc(v)}</td>")
                body.append("<tr>" + "".join(tds) + "</tr>")
            head = "".join(f"<th>{esc(c)}</th>" for c in cols)
            parts.append(
                '<div class="table-wrap"><table data-speckles="table"><thead><tr>'
                + head
                + "</tr></thead><tbody>"
                + "".join(body)
                + "</tbody></table></div>"
            )
            if len(rows) > MAX_SPECKLE_ROWS:
                parts.append(f"<p class='note'>First {MAX_SPECKLE_ROWS} of {len(rows)} speckles listed.</p>")
            parts.append(
                "<p class='note'>row, col: position in pixels from the top-left corner; area in pixels; "
                "element columns: mean map value over the speckle.</p>"
            )
        return "".join(parts)


def _speckle_rows(layer: Any) -> list[dict[str, Any]]:
    """Rows of the speckle table: the ``table`` attribute, or built from the arrays."""
    table = layer.attrs.get("table")
    if isinstance(table, list) and all(isinstance(r, Mapping) for r in table):
        return [dict(r) for r in table]
    if isinstance(table, Mapping):  # columns
        cols = {k: list(np.asarray(v).ravel()) for k, v in table.items()}
        n = min((len(v) for v in cols.values()), default=0)
        return [{k: _plain(v[i]) for k, v in cols.items()} for i in range(n)]
    cent = np.asarray(layer.get("centroids", np.zeros((0, 2))), dtype=np.float64)
    areas = np.asarray(layer.get("areas", np.zeros(0))).ravel()
    peak = np.asarray(layer.get("peak_intensity", np.zeros(0)), dtype=np.float64).ravel()
    n = cent.shape[0] if cent.ndim == 2 else 0
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"label": i + 1, "row": float(cent[i, 0]), "col": float(cent[i, 1])}
        if i < areas.size:
            row["area"] = _plain(areas[i])
        if i < peak.size:
            row["peak"] = float(peak[i])
        rows.append(row)
    return rows


def _speckle_figure(
    labels: np.ndarray,
    rows: list[dict[str, Any]],
    element: str | None,
    entries: list[MapEntry],
    max_side: int = 1024,
) -> str:
    """The speckles in colour over the grey (equalised) element map, labelled as in the table.

    Map and speckle mask are reduced to at most ``max_side`` pixels a side before drawing
    (mean of the map, any-speckle of the mask, so one-pixel speckles stay visible); the
    axes keep the full-resolution pixel coordinates of the table.
    """
    small_mask, f = figures.downsample_any(labels > 0, max_side)
    background = None
    if element:
        for e in entries:
            if e.element == element:
                background = figures.equalise(MapView.of(e.data).reduced(max_side)[0])
                break
    marks = []
    for i, row in enumerate(rows[:40]):
        r, c = _num(row.get("row")), _num(row.get("col"))
        if np.isfinite(r) and np.isfinite(c):
            marks.append((r, c, str(row.get("label", i + 1))))
    fig = images.speckle_overlay(
        small_mask, f, labels.shape, background, marks, color_hex(element) if element else "#ffcc33",
        f"Speckles{' in the ' + element + ' map' if element else ''} (labelled as in the table)",
    )
    uri = figures.figure_png_uri(fig)
    return f'<img class="speckle-map" data-speckles="map" alt="map of the speckles" src="{uri}">'
