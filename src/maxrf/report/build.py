"""Build the self-contained HTML report of a DataStack.

One HTML file: the CSS is inline, spectra and colour bars are inline SVG, maps and
matplotlib figures are ``data:`` URIs. It opens from disk or an e-mail attachment with no
network and no Python. Every figure carries a stable data attribute:

* ``svg[data-spectrum="sum"]``, ``svg[data-spectrum="max"]``
* ``img[data-map=KEY][data-layer="element_maps"|"peak_maps"][data-view="linear"|"equalised"]``
  (KEY: the element symbol for element maps, ``peak:LABEL`` for peak maps)
* ``img[data-chi2]`` (fit quality), ``[data-hotmax=I]`` (one per hotmax spectrum),
  ``img[data-speckles="map"]``, ``table[data-speckles="table"]``
* ``[data-layer-status=NAME]`` with ``data-state`` ``computed|not computed|damaged``

Each section is built on its own: a layer that is missing is marked "not computed" with
the command that computes it; a layer that cannot be drawn is marked damaged with the
reason; the report is still written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.errors import OutputLocationError
from maxrf.plot import images
from maxrf.report import figures
from maxrf.report.decomposition import section as decomposition_section
from maxrf.report.figures import esc, fmt
from maxrf.report.layers import (
    STANDARD_LAYERS,
    LayerStatus,
    MapEntry,
    MapView,
    color_hex,
    damaged,
    element_line_groups,
    element_name,
    element_rgb,
    energy_axis,
    identification_summary,
    line_markers,
    load_layer,
    map_entries,
)
from maxrf.report.line_evidence import line_evidence_html

if TYPE_CHECKING:
    from maxrf.store import DataStack
    from maxrf.types import DataStackLike

#: at most this many hotmax spectra are drawn
MAX_HOTMAX = 40
#: at most this many speckle table rows are listed
MAX_SPECKLE_ROWS = 300


def _segmentation_section(ds: DataStack, statuses: dict, max_side: int) -> str:
    from maxrf.report.segmentation import section

    return section(ds, statuses, max_side)


def _open(ds: DataStack | str | os.PathLike) -> DataStack:
    from maxrf.store import open_datastack

    return open_datastack(ds)


def _template(name: str) -> str:
    return resources.files("maxrf.report").joinpath("templates", name).read_text(encoding="utf-8")


def _not_computed(status: LayerStatus) -> str:
    cls = "not-computed" if status.state == "not computed" else "damaged"
    return (
        f'<div class="missing" data-missing="{esc(status.name)}" data-state="{esc(status.state)}">'
        f'<span class="{cls}">{esc(status.description.capitalize())}: {esc(status.state)}</span>'
        f" — {_md_code(status.message)}</div>"
    )


def _md_code(text: str) -> str:
    """Escape ``text`` and turn `backticked` spans into <code>."""
    parts = str(text).split("`")
    return "".join(f"<code>{esc(p)}</code>" if i % 2 else esc(p) for i, p in enumerate(parts))


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>\n{body}\n</section>'


class _Report:
    """State shared by the sections of one report."""

    def __init__(self, ds: Any, max_map_side: int, pixel_size_mm: float | None = None):
        from maxrf.export.images import header_pixel_size_mm

        self.ds = ds
        self.max_map_side = int(max_map_side)
        self.pixel_size_mm = pixel_size_mm or header_pixel_size_mm(ds)  # mm, for scale bars
        self.energies, self.unit = energy_axis(ds)
        self.statuses: dict[str, LayerStatus] = {}
        for name in STANDARD_LAYERS:
            _layer, st = load_layer(ds, name, lazy=True)  # opens it; the arrays stay on disk
            self.statuses[name] = st
        try:
            self.markers = line_markers(ds, self.energies, self.unit)
        except Exception:
            self.markers = []
        self._entries: tuple[list[MapEntry], dict[str, LayerStatus]] | None = None

    def entries(self) -> tuple[list[MapEntry], dict[str, LayerStatus]]:
        """The maps of the element_maps and peak_maps layers (read once)."""
        if self._entries is None:
            self._entries = map_entries(self.ds)
        return self._entries

    # ----------------------------------------------------------------- sections
    def guarded(self, sid: str, title: str, fn: Callable[[], str]) -> str:
        try:
            return _section(sid, title, fn())
        except Exception as exc:  # a report is still written; the reason is shown
            return _section(
                sid,
                title,
                f'<div class="missing damaged" data-error="{sid}">This section '
                f"could not be drawn ({esc(type(exc).__name__)}: {esc(exc)}).</div>",
            )

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

    def _map_card(self, entry: MapEntry) -> str:
        # read a band of rows at a time: the full-resolution map is never whole in memory
        small, factor, lo, hi = MapView.of(entry.data).reduced(self.max_map_side)
        rgb = element_rgb(entry.element)
        cmap = images.element_cmap(rgb) if entry.element else images.viridis(images.BAD_GREY)
        vmin = min(0.0, lo) if lo >= 0 else lo
        lin_png = images.map_png(small, cmap, vmin, hi)
        eq_png = images.map_png(figures.equalise(small), cmap, 0.0, 1.0)
        ticks = [
            ((v - vmin) / (hi - vmin), fmt(v, 3)) for v in figures.nice_ticks(vmin, hi, 4) if vmin <= v <= hi
        ]
        # equalised view: the value at each position of its colour bar is that quantile of
        # the map as shown (the reduced map, which is what was equalised)
        finite = small[np.isfinite(small)]
        fracs = (0.0, 0.5, 1.0)
        q = np.quantile(finite, fracs) if finite.size else np.zeros(3)
        eq_ticks, seen = [], set()
        for f, v in zip(fracs, q):  # value at each position = that quantile of the map
            label = fmt(float(v), 3)
            if label not in seen:
                seen.add(label)
                eq_ticks.append((f, label))
        data = f'data-map="{esc(entry.key)}" data-layer="{esc(entry.layer)}"'
        name = (
            element_name(entry.element)
            if entry.layer == "element_maps"
            else (f"{entry.keV:.2f} keV" if entry.keV is not None else "")
        )
        alt = f"{entry.label} map"
        reduced = f" Shown at 1/{factor} resolution." if factor > 1 else ""
        return (
            f'<div class="card" data-card="{esc(entry.key)}"><h3>{esc(entry.label)} '
            f'<span class="name">{esc(name)}</span></h3><div class="views">'
            f'<figure><img class="map" {data} data-view="linear" alt="{esc(alt)} (linear)" '
            f'src="{figures.data_uri(lin_png, "image/png")}">'
            + figures.colorbar_svg(cmap, ticks, units=entry.units, attrs={"data-colorbar": entry.key})
            + "<figcaption>linear scale</figcaption></figure>"
            f'<figure><img class="map" {data} data-view="equalised" alt="{esc(alt)} (equalised)" '
            f'src="{figures.data_uri(eq_png, "image/png")}">'
            + figures.colorbar_svg(
                cmap,
                eq_ticks,
                units=entry.units + ", non-linear",
                attrs={"data-colorbar": entry.key + ":equalised"},
            )
            + f"<figcaption>equalised contrast: faint areas made visible; middle tick = median.{reduced}"
            "</figcaption></figure>"
            "</div></div>"
        )

    def maps(self, layer_name: str) -> str:
        entries, statuses = self.entries()
        st = statuses[layer_name]
        self.statuses[layer_name] = st
        if not st.ok:
            return _not_computed(st)
        mine = [e for e in entries if e.layer == layer_name]
        layer = self.ds.read(layer_name, lazy=True)
        intro = ""
        if layer_name == "element_maps":
            method = layer.attrs.get("method")
            intro = (
                "<p class='note'>Counts of each element's lines in every pixel"
                + (
                    " (per-pixel spectrum fit)"
                    if method == "fit"
                    else " (sum over energy windows)"
                    if method == "window"
                    else ""
                )
                + ". Each map is shown twice: on a linear scale (true proportions) and with equalised "
                "contrast (every grey level used equally, so faint structures show).</p>"
            )
        else:
            intro = (
                "<p class='note'>Counts in each peak's energy window. "
                "Linear and equalised views as for the element maps.</p>"
            )
        if not mine:
            return intro + "<p>The layer holds no maps.</p>"
        cards = [self._map_card(e) for e in mine]
        if layer_name == "element_maps":  # which run each map comes from
            from maxrf.report.runs import runs_note, with_run_captions

            cards = with_run_captions(cards, [e.key for e in mine], dict(layer.attrs))
            intro += runs_note(dict(layer.attrs))
        from maxrf.report.scale import with_scale_bars

        cards = with_scale_bars(cards, self.ds.shape[1], self.pixel_size_mm)
        if layer_name == "element_maps" and "chi2" in layer:
            chi2 = layer["chi2"]
            if tuple(chi2.shape) == tuple(self.ds.shape[:2]):
                small, factor, _lo, _hi = MapView.of(chi2).reduced(self.max_map_side)
                cmap = images.viridis(images.BAD_GREY)
                lo, hi = figures.finite_range(small)
                hi = float(np.nanquantile(small, 0.99)) if np.isfinite(small).any() else hi
                hi = hi if hi > lo else lo + 1
                ticks = [
                    ((v - lo) / (hi - lo), fmt(v, 3)) for v in figures.nice_ticks(lo, hi, 4) if lo <= v <= hi
                ]
                cards.append(
                    '<div class="card" data-card="chi2"><h3>Fit quality '
                    '<span class="name">reduced χ² per pixel '
                    "(≈1: the fitted elements explain the spectrum)</span></h3><figure>"
                    f'<img class="map" data-chi2="1" alt="reduced chi-square map" '
                    f'src="{figures.data_uri(images.map_png(small, cmap, lo, hi), "image/png")}">'
                    + figures.colorbar_svg(
                        cmap, ticks, units="reduced χ² (top 1 % clipped)", attrs={"data-colorbar": "chi2"}
                    )
                    + "</figure></div>"
                )
        return intro + '<div class="gallery">' + "".join(cards) + "</div>"

    def hotmax(self) -> str:
        layer, st = load_layer(self.ds, "hotmax")
        if layer is None:
            return _not_computed(st)
        spectra = np.asarray(layer.get("spectra", np.zeros((0, 0))), dtype=np.float64)
        if spectra.ndim != 2 or spectra.shape[1] != self.ds.shape[2]:
            self.statuses["hotmax"] = damaged(st, f"'spectra' has shape {spectra.shape}")
            return _not_computed(self.statuses["hotmax"])
        n = spectra.shape[0]
        pix = np.asarray(layer.get("spectrum_pixels", np.zeros((0, 2))))
        peak_keV = layer.attrs.get("peak_keV") or []
        baselines = layer.get("baselines")
        envelopes = layer.get("envelopes")
        puzzle = _PuzzleMaker(self.ds)
        out = [
            "<p class='note'>The hotmax spectra are the spectra of the brightest pixel of each peak of the "
            "max spectrum; each shows where one set of peaks is strongest. Linear count scale; the "
            "spectrum's own peaks are the grey dashed lines (energies in the title)"
            + (", the identified element lines are drawn as in the spectra above" if self.markers else "")
            + ".</p>"
        ]
        for i in range(min(n, MAX_HOTMAX)):
            where = ""
            if pix.ndim == 2 and pix.shape[0] > i and pix.shape[1] >= 2:
                where = f"pixel row {int(pix[i, 0])}, column {int(pix[i, 1])}"
            kev = _floats(peak_keV[i]) if isinstance(peak_keV, list) and i < len(peak_keV) else []
            title = f"Hotmax spectrum {i}" + (f" — {where}" if where else "")  # from 0, as the CLI
            peaks_txt = (" · peaks at " + ", ".join(f"{v:.2f}" for v in kev) + " keV") if kev else ""
            peaks_txt = peaks_txt.replace("-0.00", "0.00")
            uri = puzzle.uri(i)
            if uri is not None:
                fig = (
                    f'<img class="puzzle" data-hotmax="{i}" alt="{esc(title)}: peak pattern puzzle" '
                    f'src="{uri}">'
                )
            else:
                series = [{"y": spectra[i], "label": "spectrum", "color": "#1f4e8c"}]
                for arr, label, color, dash in (
                    (baselines, "baseline", "#777", "4,3"),
                    (envelopes, "noise envelope", "#c08a2d", "2,3"),
                ):
                    arr = None if arr is None else np.asarray(arr)
                    if arr is not None and arr.ndim == 2 and arr.shape == spectra.shape:
                        series.append({"y": arr[i], "label": label, "color": color, "dash": dash, "width": 1})
                peak_marks = [
                    {"keV": v, "label": f"{v:.2f} keV", "color": "#444", "main": False} for v in kev
                ]
                fig = figures.spectrum_svg(
                    self.energies,
                    series,
                    unit=self.unit,
                    markers=self.markers + peak_marks,
                    height=280,
                    log=False,
                    title=title,
                    attrs={"data-hotmax": str(i)},
                )
            out.append(
                f'<div class="hotmax"><h3>{esc(title)}<span class="note">{esc(peaks_txt)}</span></h3>'
                f"{fig}</div>"
            )
        if n > MAX_HOTMAX:
            out.append(f"<p class='note'>{n - MAX_HOTMAX} more hotmax spectra are not shown.</p>")
        if n == 0:
            out.append("<p>No hotmax spectra.</p>")
        return "".join(out)

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


def element_of_attr(value: Any) -> str | None:
    from maxrf.report.layers import element_of

    return element_of(value) if isinstance(value, str) else None


def _size(nbytes: float) -> str:
    """A byte count in KiB, MiB or GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes / 2**10:,.1f} KiB"


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _floats(v: Any) -> list[float]:
    try:
        arr = np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return []
    return [float(x) for x in arr if np.isfinite(x)]


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


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


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


class _PuzzleMaker:
    """``maxrf.plot.plot_puzzle`` figures when the plotting and hotmax modules can make them."""

    def __init__(self, ds: Any):
        self.ds = ds
        self.atlas: Any = None
        self.failed = False

    def _atlas(self) -> Any:
        if self.atlas is None and not self.failed:
            try:
                from maxrf.hotmax import HotmaxAtlas

                # read the stored atlas; never build or store one from a report
                makers = [
                    getattr(HotmaxAtlas, "from_datastack", None),
                    getattr(HotmaxAtlas, "read", None),
                    lambda ds: HotmaxAtlas(ds, store=False),
                ]
                for make in makers:
                    if make is None:
                        continue
                    with contextlib.suppress(Exception):
                        self.atlas = make(self.ds)
                        break
            except Exception:
                pass
            self.failed = self.atlas is None
        return self.atlas

    @staticmethod
    def plot(atlas: Any, i: int) -> Any:
        """``maxrf.plot.plot_puzzle(atlas, i)`` (imported only when a hotmax layer is drawn)."""
        from maxrf.plot import plot_puzzle

        return plot_puzzle(atlas, i)

    def uri(self, i: int) -> str | None:
        atlas = self._atlas()
        if atlas is None:
            return None
        try:
            with images.closing_new_figures():
                fig = images.figure_of(self.plot(atlas, i))
                return None if fig is None else figures.figure_png_uri(fig)
        except Exception:
            return None


def build_report(ds: DataStackLike, *, title: str | None = None, max_map_side: int = 1024,
                 pixel_size_mm: float | None = None) -> str:
    """The report of a DataStack as one self-contained HTML string.

    Parameters
    ----------
    ds : DataStack or path
        The scan.
    title : str, optional
        Page title (default: "MA-XRF report: NAME").
    max_map_side : int
        Maps larger than this (pixels, longest side) are shown reduced by block means.
    pixel_size_mm : float, optional
        Scan pixel size (mm) for the maps' scale bars; default: from the scan's header
        (no scale bar when it has none).

    Returns
    -------
    str
        The HTML document (no external resources).
    """
    return "".join(_document(_open(ds), title, max_map_side, pixel_size_mm))


def _document(ds: Any, title: str | None, max_map_side: int,
              pixel_size_mm: float | None = None) -> list[str]:
    """The report as a list of HTML pieces, in order (joined by :func:`build_report`,
    written one by one by :func:`write_report` so the document is never copied whole)."""
    rep = _Report(ds, max_map_side, pixel_size_mm)
    name = Path(ds.path).name.removesuffix(".datastack")
    title = title or f"MA-XRF report: {name}"
    h, w, c = ds.shape
    sections = [
        ("summary", "Scan summary", rep.summary),
        ("calibration", "Energy calibration", rep.calibration),
        ("spectra", "Spectra", rep.spectra),
        ("elements", "Identified elements", rep.elements),
        ("element-maps", "Element maps", lambda: rep.maps("element_maps")),
        ("peak-maps", "Peak maps", lambda: rep.maps("peak_maps")),
        ("hotmax", "Hotmax spectra", rep.hotmax),
        ("speckles", "Speckles", rep.speckles),
        ("components", "Components and material classes", lambda: decomposition_section(rep)),
        ("segmentation", "Particles, strokes and background",
         lambda: _segmentation_section(ds, rep.statuses, max_map_side)),
        ("provenance", "Provenance", rep.provenance),
    ]
    if "registration" in ds.layers:  # maps over the photograph (maxrf register)
        from maxrf.report.overlay import overlay_section

        sections.insert(-1, ("photo-overlay", "Maps on the photograph",
                             lambda: overlay_section(ds, max_map_side)))
    built = [(sid, t, rep.guarded(sid, t, fn)) for sid, t, fn in sections]
    # the summary's status table reflects what the later sections found: rebuild it last
    built[0] = (built[0][0], built[0][1], rep.guarded("summary", "Scan summary", rep.summary))
    nav = "".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t, _ in built)
    from maxrf import __version__

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="maxrf {esc(__version__)}"><title>{esc(title)}</title>'
        f"<style>{_template('report.css')}</style></head><body>"
        f'<header class="top"><h1>{esc(title)}</h1><div class="sub">{h} × {w} pixels · {c} channels · '
        f"report made {now} with maxrf {esc(__version__)}</div></header>"
        f"<nav>{nav}</nav><main>"
    )
    pieces = [head]
    for i, (_sid, _title, html) in enumerate(built):  # sections separated by newlines
        pieces += [html] if i == 0 else ["\n", html]
    pieces.append(
        "</main>"
        "<footer>Made with maxrf. This file is self-contained: it can be copied, e-mailed and opened in any "
        "web browser without an internet connection.</footer></body></html>\n"
    )
    return pieces


def write_report(
    ds: DataStackLike, path: str | os.PathLike[str] | None = None, *, title: str | None = None,
    max_map_side: int = 1024, pixel_size_mm: float | None = None,
) -> Path:
    """Write the self-contained HTML report of a DataStack.

    Parameters
    ----------
    ds : DataStack or path
        The scan.
    path : str or Path, optional
        Output file; default ``NAME_report.html`` next to the datastack. An existing file
        is replaced (atomically: readers see the old or the new report).
    title : str, optional
        Page title.
    max_map_side : int
        Maps larger than this (pixels, longest side) are shown reduced.
    pixel_size_mm : float, optional
        Scan pixel size (mm) for scale bars (default: from the header, if it has one).

    Returns
    -------
    Path
        The report written.

    Raises
    ------
    OutputLocationError
        If the output folder does not exist or is not writable.
    """
    ds = _open(ds)
    if path is None:
        base = Path(ds.path)
        path = base.with_name(base.name.removesuffix(".datastack") + "_report.html")
    path = Path(path)
    if path.is_dir():
        raise OutputLocationError("the output is a folder; give a file name such as report.html", path)
    from maxrf.outputs import os_error, probe_folder

    probe_folder(path.parent)  # before the long work: a read-only place fails now, in one line
    pieces = _document(ds, title, max_map_side, pixel_size_mm)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for piece in pieces:  # never one copy of the whole document
                fh.write(piece)
        os.replace(tmp, path)
    except OSError as exc:  # permission, read-only, full, vanished: one line
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise os_error(exc, path, "write the report") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
