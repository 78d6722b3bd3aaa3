"""The report's map galleries (element and peak maps, linear and equalised)."""

from __future__ import annotations

import numpy as np

from maxrf.plot import images
from maxrf.report import figures
from maxrf.report.figures import esc, fmt
from maxrf.report.html import _not_computed
from maxrf.report.layers import (
    MapEntry,
    MapView,
    element_name,
    element_rgb,
)


class MapSections:
    """Sections of :class:`maxrf.report.build._Report` (uses its ``ds``, ``statuses``,
    ``energies``, ``unit``, ``markers``, ``max_map_side`` and ``entries()``)."""

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
