"""The report's spectra (sum and max, with the identified lines) and identified elements."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from maxrf.report import figures
from maxrf.report.figures import esc
from maxrf.report.html import _md_code, _not_computed
from maxrf.report.layers import (
    color_hex,
    element_line_groups,
    element_name,
    identification_summary,
)
from maxrf.report.line_evidence import line_evidence_html


class SpectraSections:
    """Sections of :class:`maxrf.report.build._Report` (uses its ``ds``, ``statuses``,
    ``energies``, ``unit``, ``markers``, ``max_map_side`` and ``entries()``)."""

    def spectra(self) -> str:
        ds = self.ds
        x = self.energies
        out = []
        note = (
            '<p class="note">Logarithmic count scale. Vertical lines mark the main emission lines of the '
            "identified elements (solid: strongest line, labelled; dashed: other lines) and grey lines the "
            "instrument peaks (tube, scattering). A label with '?' is a possible, not certain, element. "
            "Hover a line for its energy.</p>"
        )
        if not self.markers:
            st = self.statuses["identification"]
            note = (
                '<p class="note">Logarithmic count scale. No element lines are marked: '
                + (
                    "no energy calibration (run <code>maxrf calibrate</code>)"
                    if self.unit != "keV"
                    else _md_code(st.message)
                    if not st.ok
                    else "no element was identified"
                )
                + ".</p>"
            )
        for key, title, y, color, ylabel in (
            (
                "sum",
                "Sum spectrum (average over all pixels)",
                ds.sum_spectrum,
                "#1f4e8c",
                "counts per channel per pixel",
            ),
            (
                "max",
                "Max spectrum (brightest pixel of each channel)",
                ds.max_spectrum,
                "#8c2d1f",
                "counts per channel",
            ),
        ):
            svg = figures.spectrum_svg(
                x,
                [{"y": np.asarray(y, dtype=float), "label": title.split(" (")[0], "color": color}],
                unit=self.unit,
                markers=self.markers,
                title=title,
                ylabel=ylabel,
                attrs={"data-spectrum": key},
            )
            out.append(f"<h3>{esc(title)}</h3>{svg}")
        return note + "\n".join(out)

    def elements(self) -> str:
        elements, instrument, st = identification_summary(self.ds)
        self.statuses["identification"] = st
        if not st.ok:
            return _not_computed(st)
        try:
            tube_kv = float(self.ds.read("identification").attrs.get("tube_kv") or 40.0)
        except Exception:
            tube_kv = 40.0
        found = [e for e in elements if e["present"]]
        absent = [e for e in elements if not e["present"]]
        rank = {"present": 0, "possible": 1}
        found.sort(key=lambda e: (rank.get(e["status"].lower(), 2), -(e["confidence"] or 0)))
        if not found:
            body = "<p>No element was identified.</p>"
        else:
            trs = []
            for e in found:
                el = e["element"]
                groups = element_line_groups(el, tube_kv)[:4]
                lines = ", ".join(
                    f"{g['line']} {g['keV']:.2f}" for g in sorted(groups, key=lambda g: g["keV"])
                )
                conf = "–" if e["confidence"] is None else f"{e['confidence']:.2f}"
                trs.append(
                    f'<tr data-element="{esc(el)}" data-status="{esc(e["status"])}">'
                    f'<td><span class="chip" style="background:{color_hex(el)}"></span><b>{esc(el)}</b></td>'
                    f"<td>{esc(element_name(el))}</td><td>{esc(e['status'])}</td>"
                    f"<td class='num'>{conf}</td><td>{esc(lines)} keV</td></tr>"
                )
            body = (
                "<table><thead><tr><th>Element</th><th>Name</th><th>Status</th>"
                "<th class='num'>Confidence</th>"
                "<th>Main lines</th></tr></thead><tbody>" + "".join(trs) + "</tbody></table>"
            )
        with contextlib.suppress(Exception):  # evidence table: only when the layer has it
            body += line_evidence_html(self.ds.read("identification").attrs.get("elements") or [])
        if absent:
            names = ", ".join(f"{esc(e['element'])}" for e in sorted(absent, key=lambda e: e["element"]))
            body += (
                f"<p class='note' data-absent='{len(absent)}'>Also checked and not found "
                f"({len(absent)}): {names}.</p>"
            )
        if instrument:
            body += (
                "<h3 class='sub'>Instrument peaks (not from the artwork)</h3><ul>"
                + "".join(
                    f"<li>{esc(i['name'])} — {i['keV']:.3f} keV ({esc(i['kind'])})</li>" for i in instrument
                )
                + "</ul>"
            )
        try:
            unexplained = [
                float(v) for v in self.ds.read("identification").attrs.get("unexplained_keV") or []
            ]
        except Exception:
            unexplained = []
        if unexplained:
            body += (
                "<p>Peaks not explained by any element: "
                + ", ".join(f"{v:.2f} keV" for v in unexplained if math.isfinite(v))
                + ".</p>"
            )
        return body
