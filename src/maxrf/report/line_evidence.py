"""The report's "lines seen and missed" table of the identification, from the layer attrs.

Each present / possible element of the ``identification`` layer carries a ``line_summary``
(one record per line, from the spectrum where the line was expected strongest:
:meth:`maxrf.identify.ElementResult.line_summary`); this module renders it so a reader can
check a call: which lines were seen, which were expected and missed, with the expected and
observed net counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from maxrf.report.figures import esc


def _num(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{v:.0f}" if math.isfinite(v) else "–"


def line_evidence_html(elements: Sequence[Any]) -> str:
    """HTML table of the lines seen and missed of every present or possible element.

    Parameters
    ----------
    elements : sequence of dict
        The ``elements`` attribute of the ``identification`` layer.

    Returns
    -------
    str
        ``''`` when no element has a line summary (e.g. a layer written by an older version).
    """
    rows = []
    for item in elements:
        if not isinstance(item, Mapping) or item.get("status") not in ("present", "possible"):
            continue
        summary = item.get("line_summary")
        if not isinstance(summary, list):
            continue
        for ln in summary:
            if not isinstance(ln, Mapping) or ln.get("verdict") not in ("seen", "missed"):
                continue
            try:
                kev = f"{float(ln.get('keV')):.2f}"
            except (TypeError, ValueError):
                continue
            rows.append(
                f'<tr data-element="{esc(str(item.get("element")))}" '
                f'data-verdict="{esc(str(ln.get("verdict")))}">'
                f"<td>{esc(str(item.get('element')))}</td><td>{esc(str(ln.get('line')))}</td>"
                f"<td class='num'>{kev}</td><td>{esc(str(ln.get('verdict')))}</td>"
                f"<td class='num'>{_num(ln.get('expected_counts'))}</td>"
                f"<td class='num'>{_num(ln.get('observed_counts'))}</td>"
                f"<td class='num'>{esc(str(ln.get('spectrum')))}</td></tr>"
            )
    if not rows:
        return ""
    return (
        "<h3 class='sub'>Lines seen and missed</h3><p class='note'>For each element, every line "
        "expected above the counting noise, in the hotmax spectrum where it is expected "
        "strongest: expected and observed net counts (a missed line speaks against the "
        "element).</p><table><thead><tr><th>Element</th><th>Line</th><th class='num'>keV</th>"
        "<th>Verdict</th><th class='num'>Expected</th><th class='num'>Observed</th>"
        "<th class='num'>Spectrum</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
