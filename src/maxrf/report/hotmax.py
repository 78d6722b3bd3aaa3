"""The report's hotmax spectra, each with its puzzle figure when it can be drawn."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from maxrf.plot import images
from maxrf.report import figures
from maxrf.report.figures import esc
from maxrf.report.html import _floats, _not_computed
from maxrf.report.layers import (
    damaged,
    load_layer,
)

#: at most this many hotmax spectra are drawn
MAX_HOTMAX = 40


class HotmaxSection:
    """Sections of :class:`maxrf.report.build._Report` (uses its ``ds``, ``statuses``,
    ``energies``, ``unit``, ``markers``, ``max_map_side`` and ``entries()``)."""

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
