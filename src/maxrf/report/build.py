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
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maxrf.errors import OutputLocationError
from maxrf.report.decomposition import section as decomposition_section
from maxrf.report.figures import esc
from maxrf.report.gallery import MapSections
from maxrf.report.hotmax import MAX_HOTMAX, HotmaxSection
from maxrf.report.html import _section, _template, element_of_attr
from maxrf.report.layers import (
    STANDARD_LAYERS,
    LayerStatus,
    MapEntry,
    energy_axis,
    line_markers,
    load_layer,
    map_entries,
)
from maxrf.report.overview import OverviewSections
from maxrf.report.speckles import MAX_SPECKLE_ROWS, SpeckleSection
from maxrf.report.spectra import SpectraSections

if TYPE_CHECKING:
    from maxrf.store import DataStack
    from maxrf.types import DataStackLike

__all__ = ["MAX_HOTMAX", "MAX_SPECKLE_ROWS", "build_report", "element_of_attr", "write_report"]


def _segmentation_section(ds: DataStack, statuses: dict, max_side: int) -> str:
    from maxrf.report.segmentation import section

    return section(ds, statuses, max_side)


def _open(ds: DataStack | str | os.PathLike) -> DataStack:
    from maxrf.store import open_datastack

    return open_datastack(ds)


class _Report(OverviewSections, SpectraSections, MapSections, HotmaxSection, SpeckleSection):
    """State shared by the sections of one report; the sections come from one module each."""

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
