"""The report's overview: scan summary, energy calibration and provenance."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from maxrf.report.figures import esc, fmt
from maxrf.report.html import _md_code, _not_computed, _num, _size
from maxrf.report.layers import (
    load_layer,
)


class OverviewSections:
    """Sections of :class:`maxrf.report.build._Report` (uses its ``ds``, ``statuses``,
    ``energies``, ``unit``, ``markers``, ``max_map_side`` and ``entries()``)."""

    def summary(self) -> str:
        ds = self.ds
        h, w, c = ds.shape
        md = ds.metadata
        nbytes = h * w * c * np.dtype(ds.dtype).itemsize
        src = md.get("source") if isinstance(md.get("source"), Mapping) else {}
        rows = [
            ("Datastack", f"<code>{esc(Path(ds.path).name)}</code>"),
            ("Image size", f"{h} × {w} pixels (rows × columns)"),
            (
                "Spectrum",
                f"{c} channels, {esc(ds.dtype)}"
                + (
                    f", {fmt(self.energies[0], 3)} – {fmt(self.energies[-1], 4)} keV"
                    if self.unit == "keV"
                    else " (no energy calibration)"
                ),
            ),
            (
                "Cube",
                f"{_size(nbytes)} uncompressed, stored in chunks of "
                f"{ds.chunks[0]} × {ds.chunks[1]} pixels × all channels",
            ),
        ]
        if src.get("rpl") or src.get("path"):
            rows.append(("Source scan", f"<code>{esc(src.get('rpl') or src.get('path'))}</code>"))
        try:
            from maxrf.store import store_state

            state = store_state(ds.path)
            created, version = state.created, state.maxrf_version
        except Exception:
            created = version = None
        if created:
            rows.append(("Converted", f"{esc(created)}" + (f" by maxrf {esc(version)}" if version else "")))
        dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
        status_rows = []
        for name, st in self.statuses.items():
            if st.ok:
                cell = '<span class="state-computed">computed</span>'
            else:
                cls = st.state.replace(" ", "-")
                cell = f'<span class="{cls}">{esc(st.state)}</span> — {_md_code(st.message)}'
            status_rows.append(
                f'<tr data-layer-status="{esc(name)}" data-state="{esc(st.state)}">'
                f"<td><code>{esc(name)}</code></td><td>{esc(st.description)}</td><td>{cell}</td></tr>"
            )
        table = (
            "<table><thead><tr><th>Layer</th><th>What it is</th><th>Status</th></tr></thead><tbody>"
            + "".join(status_rows)
            + "</tbody></table>"
        )
        return f'<dl class="kv">{dl}</dl><h3 class="sub">Results in this report</h3>{table}'

    def calibration(self) -> str:
        layer, st = load_layer(self.ds, "calibration")
        if layer is None:
            return _not_computed(st) + (
                '<p class="note">Without a calibration the spectra are drawn '
                "against channel numbers and no element lines can be marked.</p>"
            )
        a = layer.attrs
        gain, off = a.get("gain_keV"), a.get("offset_keV")
        rows = []
        try:
            rows.append(("Energy scale", f"E = {float(off):.4f} keV + {float(gain) * 1000:.4f} eV × channel"))
        except (TypeError, ValueError):
            rows.append(("Energy scale", "invalid gain/offset in the layer"))
        labels = {
            "method": "Method",
            "anode": "Tube anode",
            "tube_kv": "Tube voltage (kV)",
            "theta_deg": "Scattering angle (degrees)",
        }
        for k, label in labels.items():
            if a.get(k) is not None:
                v = a[k]
                rows.append((label, esc(fmt(v, 4) if isinstance(v, (int, float)) else v)))
        body = '<dl class="kv">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
        from maxrf.report.calibration_verdict import verdict_html

        body += verdict_html(a)
        peaks = a.get("peaks") or []
        if isinstance(peaks, list) and peaks:
            trs = []
            for p in peaks:
                if not isinstance(p, Mapping):
                    continue
                trs.append(
                    f"<tr><td>{esc(p.get('name', ''))}</td>"
                    f"<td class='num'>{esc(fmt(_num(p.get('channel')), 5))}"
                    f"</td><td class='num'>{esc(fmt(_num(p.get('keV')), 4))}</td>"
                    f"<td class='num'>{esc(fmt(_num(p.get('residual_eV')), 3))}</td></tr>"
                )
            body += (
                "<h3 class='sub'>Reference peaks used</h3><table><thead><tr><th>peak</th>"
                "<th class='num'>channel</th><th class='num'>keV</th><th class='num'>residual (eV)</th>"
                "</tr></thead><tbody>" + "".join(trs) + "</tbody></table>"
            )
        return body

    def provenance(self) -> str:
        md = self.ds.metadata
        body = f'<pre class="meta">{esc(json.dumps(md, indent=1, default=str))}</pre>'
        rows = []
        for name in self.ds.layers:
            try:
                attrs = self.ds.read(name, lazy=True).attrs
            except Exception:
                continue
            keep = {
                k: v for k, v in attrs.items() if isinstance(v, (str, int, float, bool)) and len(str(v)) < 80
            }
            rows.append(
                f"<tr><td><code>{esc(name)}</code></td>"
                f"<td>{esc(', '.join(f'{k}={v}' for k, v in keep.items()))}"
                "</td></tr>"
            )
        if rows:
            body += (
                "<h3 class='sub'>Layer settings</h3><table><thead><tr><th>layer</th><th>settings</th>"
                "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            )
        return body
