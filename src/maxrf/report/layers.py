"""Read a DataStack's derived layers defensively, for the report and the viewer.

The front ends show whatever is there: each standard layer is either *computed* (and
valid against its schema in ``docs/ARCHITECTURE.md``), *not computed* (with the command
that computes it) or *damaged* (present but unreadable or off-schema; the reason is
shown). Nothing here raises for a missing or malformed layer.

This module does no plotting and no heavy computation: maps and spectra are read from
the layers (small), never from the cube.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maxrf.errors import LayerMissingError, MaxrfError
from maxrf.maps.layers import element_of, identification_entries
from maxrf.store import DataStack

#: standard layer -> (what it is, the command that computes it)
STANDARD_LAYERS: dict[str, tuple[str, str]] = {
    "calibration": ("energy calibration", "maxrf calibrate"),
    "hotmax": ("hotmax spectra (the brightest pixels of each peak)", "maxrf hotmax"),
    "identification": ("element identification", "maxrf identify"),
    "peak_maps": ("peak maps", "maxrf maps"),
    "element_maps": ("element maps", "maxrf maps"),
    "speckles": ("speckles (small bright particles)", "maxrf speckles"),
    "segmentation": ("particles, strokes and background of an element map", "maxrf segment"),
}

#: identification statuses that mean "not there" (no line markers are drawn for them)

#: line groups labelled on spectra, strongest first within a family
LINE_GROUPS: tuple[str, ...] = ("Ka", "Kb", "La", "Lb", "Lg", "Ma", "Mb")


@dataclass
class LayerStatus:
    """Whether a layer can be shown.

    Attributes
    ----------
    name : str
        Layer name.
    state : {'computed', 'not computed', 'damaged'}
    description : str
        What the layer is, in plain words.
    command : str
        The command that computes it.
    message : str
        Why it cannot be shown (empty when computed).
    """

    name: str
    state: str
    description: str
    command: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "computed"

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "state": self.state,
            "description": self.description,
            "command": self.command,
            "message": self.message,
        }

    as_dict = to_dict  # the former name


@dataclass
class MapEntry:
    """One 2-D map of a layer.

    Attributes
    ----------
    key : str
        Unique id: the element symbol for element maps (``'Fe'``), ``'peak:LABEL'`` for
        peak maps.
    label : str
        Human label (``'Fe'``, ``'Fe Ka'``).
    layer : str
        ``'element_maps'`` or ``'peak_maps'``.
    index : int
        Index in the layer's ``maps`` array.
    element : str or None
        Element symbol when known (gives the colour).
    units : str
        Units of the values.
    keV : float or None
        Peak energy for peak maps.
    """

    key: str
    label: str
    layer: str
    index: int
    element: str | None
    units: str
    keV: float | None = None
    data: Any = field(default=None, repr=False)  # the map, read by np.asarray(data)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "key": self.key,
            "label": self.label,
            "layer": self.layer,
            "index": self.index,
            "element": self.element,
            "units": self.units,
            "keV": self.keV,
        }
        out["color"] = color_hex(self.element) if self.element else None
        return out

    as_dict = to_dict  # the former name


class MapView:
    """One 2-D map of a layer's ``maps`` stack, read from the store when asked for.

    ``np.asarray(view)`` reads the map (float32); ``shape`` needs no read. The report and
    the viewer hold views, not maps, so a scan with dozens of maps of tens of megapixels
    never has them all in memory at once.
    """

    __slots__ = ("_source", "_index", "shape")

    def __init__(self, source: Any, index: int | None, shape: tuple[int, int]):
        self._source, self._index, self.shape = source, index, shape

    @classmethod
    def of(cls, data: Any) -> MapView:
        """``data`` itself if it is a view, else a view of the whole 2-D array ``data``."""
        return data if isinstance(data, cls) else cls(data, None, tuple(np.shape(data)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        src = self._source if self._index is None else self._source[self._index]
        data = np.asarray(src).astype(np.float32, copy=False)
        return data if dtype is None else data.astype(dtype, copy=False)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the map (float32), read from the store."""
        key = np.s_[start:stop] if self._index is None else np.s_[self._index, start:stop]
        return np.asarray(self._source[key]).astype(np.float32, copy=False)

    def reduced(self, max_side: int) -> tuple[np.ndarray, int, float, float]:
        """The map reduced for display, read a band of rows at a time.

        Returns
        -------
        small : ndarray
            :func:`maxrf.report.figures.downsample` of the map (block means, float64).
        factor : int
            The reduction factor (1 = full resolution).
        lo, hi : float
            :func:`maxrf.report.figures.finite_range` of the full-resolution map.
        """
        from maxrf.report import figures

        h, w = self.shape
        factor = figures.reduction_factor((h, w), max_side)
        step = factor * max(1, figures.BAND_PIXELS // (factor * factor * max(w, 1)))
        bands, extremes = [], []
        for r0 in range(0, h, step):  # bands of whole blocks: the reduction is the map's
            band = self.rows(r0, min(h, r0 + step))
            bands.append(figures.downsample(band, max_side, factor=factor)[0])
            vals = band[np.isfinite(band)]
            extremes += [vals.min(), vals.max()] if vals.size else []
        small = np.concatenate(bands) if bands else np.zeros((0, w))
        lo, hi = figures.finite_range(np.asarray(extremes, dtype=np.float64))
        return small, factor, lo, hi


def load_layer(ds: DataStack, name: str, lazy: bool = False) -> tuple[Any | None, LayerStatus]:
    """Read layer ``name`` without raising (``lazy``: arrays read on indexing).

    Parameters
    ----------
    ds : DataStack
        The store.
    name : str
        Layer name.

    Returns
    -------
    (Layer or None, LayerStatus)
    """
    description, command = STANDARD_LAYERS.get(name, (name, "maxrf"))
    try:
        layer = ds.read(name, lazy=True) if lazy else ds.read(name)
    except LayerMissingError:
        return None, LayerStatus(name, "not computed", description, command, f"run `{command}`")
    except (MaxrfError, OSError, ValueError, KeyError, TypeError) as exc:
        return None, LayerStatus(
            name,
            "damaged",
            description,
            command,
            f"could not be read ({_short(exc)}); recompute it with `{command}`",
        )
    return layer, LayerStatus(name, "computed", description, command)


def _short(exc: BaseException, n: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= n else text[: n - 1] + "…"


def damaged(status: LayerStatus, why: str) -> LayerStatus:
    """The same layer status marked damaged with a reason."""
    return LayerStatus(
        status.name,
        "damaged",
        status.description,
        status.command,
        f"present but not usable ({why}); recompute it with `{status.command}`",
    )


# ----------------------------------------------------------------------------- elements


def element_rgb(element: str | None) -> tuple[float, float, float]:
    """The element's colour (``maxrf.physics.element_color``), grey when unknown."""
    if element:
        try:
            from maxrf.physics import element_color

            r, g, b = element_color(element)
            return (float(r), float(g), float(b))
        except Exception:
            pass
    return (0.45, 0.45, 0.45)


def color_hex(element: str | None) -> str:
    """``'#rrggbb'`` of :func:`element_rgb`."""
    r, g, b = element_rgb(element)
    return "#{:02x}{:02x}{:02x}".format(*(int(round(v * 255)) for v in (r, g, b)))


def element_name(element: str | None) -> str:
    """The English name of an element (``'iron'``), or ``''``."""
    if not element:
        return ""
    try:
        import xraydb

        z = xraydb.atomic_number(element)
        return _NAMES[z - 1] if 0 < z <= len(_NAMES) else ""
    except Exception:
        return ""


_NAMES = (
    "hydrogen helium lithium beryllium boron carbon nitrogen oxygen fluorine neon sodium magnesium "
    "aluminium silicon phosphorus sulfur chlorine argon potassium calcium scandium titanium vanadium "
    "chromium manganese iron cobalt nickel copper zinc gallium germanium arsenic selenium bromine "
    "krypton rubidium strontium yttrium zirconium niobium molybdenum technetium ruthenium rhodium "
    "palladium silver cadmium indium tin antimony tellurium iodine xenon caesium barium lanthanum "
    "cerium praseodymium neodymium promethium samarium europium gadolinium terbium dysprosium holmium "
    "erbium thulium ytterbium lutetium hafnium tantalum tungsten rhenium osmium iridium platinum gold "
    "mercury thallium lead bismuth polonium astatine radon francium radium actinium thorium "
    "protactinium uranium neptunium plutonium americium curium berkelium californium"
).split()


# ----------------------------------------------------------------------------- energies
def energy_axis(ds: DataStack) -> tuple[np.ndarray, str]:
    """Channel energies (keV) and ``'keV'``, or channel numbers and ``'channel'`` when the
    scan has no (valid) calibration."""
    n = int(ds.shape[2])
    try:
        e = np.asarray(ds.energies, dtype=np.float64)
        if e.shape == (n,) and np.all(np.isfinite(e)) and (n < 2 or np.all(np.diff(e) > 0)):
            return e, "keV"
    except Exception:
        pass
    return np.arange(n, dtype=np.float64), "channel"


# ----------------------------------------------------------------------------- maps
def map_entries(ds: DataStack) -> tuple[list[MapEntry], dict[str, LayerStatus]]:
    """All 2-D maps of the ``element_maps`` and ``peak_maps`` layers (with their data).

    Returns
    -------
    entries : list of MapEntry
        Element maps first (layer order), then peak maps.
    statuses : dict
        ``{'element_maps': LayerStatus, 'peak_maps': LayerStatus}``.
    """
    h, w = int(ds.shape[0]), int(ds.shape[1])
    entries: list[MapEntry] = []
    statuses: dict[str, LayerStatus] = {}
    used: set[str] = set()

    layer, status = load_layer(ds, "element_maps", lazy=True)
    if layer is not None:
        maps, why = _maps_array(layer, h, w)
        names = _str_list(layer.attrs.get("elements"))
        if maps is None:
            status = damaged(status, why)
        elif names is None or len(names) != len(maps):
            status = damaged(status, f"attribute 'elements' does not name the {len(maps)} maps")
        else:
            from maxrf.evidence import element_statuses, label

            try:  # a possible element's map is labelled 'Re?'
                statuses_of = element_statuses(ds)
            except (MaxrfError, OSError, ValueError, KeyError):  # damaged: reported elsewhere
                statuses_of = {}
            for i, name in enumerate(names):
                el = element_of(name)
                key = _unique(name.strip() or f"map{i}", used)
                shown = label(name, statuses_of.get(el or "", ""))
                entries.append(MapEntry(key, shown, "element_maps", i, el, "counts per pixel",
                                        data=maps[i]))
    statuses["element_maps"] = status

    layer, status = load_layer(ds, "peak_maps", lazy=True)
    if layer is not None:
        maps, why = _maps_array(layer, h, w)
        if maps is None:
            status = damaged(status, why)
        else:
            k = len(maps)
            labels = _str_list(layer.attrs.get("labels"))
            kev = _float_list(layer.get("peaks_keV"))
            if labels is None or len(labels) != k:
                labels = [
                    f"peak {i}" + (f" ({kev[i]:.2f} keV)" if kev and len(kev) == k else "") for i in range(k)
                ]
            norm = layer.attrs.get("norm")
            units = "counts in the peak window" if not norm else f"counts ({norm})"
            for i, label in enumerate(labels):
                key = _unique("peak:" + (label.strip() or str(i)), used)
                e = kev[i] if kev and len(kev) == k and math.isfinite(kev[i]) else None
                entries.append(
                    MapEntry(key, label, "peak_maps", i, element_of(label), units, e, data=maps[i])
                )
    statuses["peak_maps"] = status
    _component_entries(ds, h, w, entries, used)
    return entries, statuses


def _component_entries(ds: Any, h: int, w: int, entries: list[MapEntry], used: set[str]) -> None:
    """Abundance maps of the ``decomposition`` layer and the ``clusters`` class map."""
    layer, _status = load_layer(ds, "decomposition", lazy=True)
    if layer is not None:
        maps, _why = _maps_array(layer, h, w)
        comps = layer.attrs.get("components", [])
        if maps is not None and len(comps) == len(maps):
            for i, comp in enumerate(comps):
                els = ", ".join(comp.get("elements", [])) or "scatter"
                entries.append(MapEntry(_unique(f"component:{i}", used), f"component {i} ({els})",
                                        "decomposition", i, None, "counts per pixel", data=maps[i]))
    layer, _status = load_layer(ds, "clusters", lazy=True)
    if layer is not None and "labels" in layer and tuple(layer["labels"].shape) == (h, w):
        entries.append(MapEntry(_unique("classes", used), "material classes", "clusters", 0, None,
                                "class", data=layer["labels"]))


def _unique(key: str, used: set[str]) -> str:
    out, n = key, 2
    while out in used:
        out, n = f"{key} ({n})", n + 1
    used.add(out)
    return out


def _maps_array(layer: Mapping[str, Any], h: int, w: int) -> tuple[list[MapView] | None, str]:
    """One :class:`MapView` per map of ``layer['maps']`` (checked for shape and dtype
    without reading the maps), or None and why not."""
    maps = layer.get("maps")
    if maps is None:
        return None, "no 'maps' array"
    if not (hasattr(maps, "shape") and hasattr(maps, "dtype")):
        maps = np.asarray(maps)
    shape = tuple(int(s) for s in maps.shape)
    stack = shape if len(shape) != 2 else (1, *shape)
    if len(stack) != 3 or stack[1:] != (h, w):
        return None, f"'maps' has shape {shape}, expected (k, {h}, {w})"
    if np.dtype(maps.dtype).kind not in "biuf":
        return None, f"'maps' has dtype {maps.dtype}"
    return [MapView(maps, None if len(shape) == 2 else i, (h, w)) for i in range(stack[0])], ""


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        else:
            return None
    return [str(v) for v in value]


def _float_list(value: Any) -> list[float] | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    return [float(v) for v in arr]


# ----------------------------------------------------------------------------- identification
def identification_summary(ds: DataStack) -> tuple[list[dict[str, Any]], list[dict[str, Any]], LayerStatus]:
    """Elements and instrument peaks of the ``identification`` layer, normalised.

    Returns
    -------
    elements : list of dict
        :func:`maxrf.maps.layers.identification_entries`: ``{element, status, confidence,
        present, lines}`` (lines as given, may be empty).
    instrument : list of dict
        ``{name, keV, kind}`` with a finite ``keV``.
    status : LayerStatus
    """
    layer, status = load_layer(ds, "identification")
    if layer is None:
        return [], [], status
    attrs = layer.attrs
    elements = identification_entries(attrs)
    if elements is None:
        return [], [], damaged(status, "attribute 'elements' is not a list")
    instrument = []
    for item in attrs.get("instrument") or []:
        if not isinstance(item, Mapping):
            continue
        kev = _finite(item.get("keV", item.get("energy_keV")))
        if kev is None:
            continue
        instrument.append({"name": str(item.get("name", "")), "keV": kev, "kind": str(item.get("kind", ""))})
    return elements, instrument, status


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def element_line_groups(element: str, tube_kv: float = 40.0, min_rel: float = 0.05) -> list[dict[str, Any]]:
    """Main line groups of an element (``Ka``, ``Kb``, ``La``...) excited at ``tube_kv``.

    Returns
    -------
    list of dict
        ``{element, line, keV, rel}`` sorted by decreasing ``rel``; ``keV`` is the
        intensity-weighted energy of the group; ``rel`` the group's strongest line
        relative to the element's strongest line.
    """
    from maxrf.physics import element_lines

    try:
        lines = element_lines(element, tube_kv, min_keV=0.5, min_rel=1e-3)
    except Exception:
        return []
    groups: dict[str, list[Any]] = {}
    for ln in lines:
        for g in LINE_GROUPS:
            if ln.siegbahn.startswith(g):
                groups.setdefault(g, []).append(ln)
                break
    out = []
    for g, members in groups.items():
        w = np.array([m.rel_intensity for m in members])
        e = np.array([m.energy_keV for m in members])
        rel = float(w.max())
        if rel >= min_rel:
            out.append({"element": element, "line": g, "keV": float(np.sum(w * e) / np.sum(w)), "rel": rel})
    out.sort(key=lambda d: -d["rel"])
    return out


def line_markers(ds: DataStack, energies: np.ndarray | None = None, unit: str = "keV") -> list[dict]:
    """Markers for spectra: the main lines of every identified element and instrument peaks.

    Parameters
    ----------
    ds : DataStack
    energies : ndarray, optional
        The spectrum's axis; markers outside it are dropped.
    unit : str
        ``'keV'``; with ``'channel'`` (uncalibrated scan) no markers are returned.

    Returns
    -------
    list of dict
        ``{element, line, label, keV, rel, color, kind ('element'|'instrument'), status, main,
        text}``; ``main`` is True for the strongest line of each element (the one to label,
        with ``text``: the symbol, with a ``?`` for a 'possible' element). Instrument peaks
        (grey) are never main.
    """
    if unit != "keV":
        return []
    elements, instrument, _status = identification_summary(ds)
    tube_kv = 40.0
    try:
        layer = ds.read("identification")
        tube_kv = float(layer.attrs.get("tube_kv") or (ds.calibration or {}).get("tube_kv") or 40.0)
        if not math.isfinite(tube_kv) or tube_kv <= 0:
            tube_kv = 40.0
    except Exception:
        pass
    lo, hi = (float(energies[0]), float(energies[-1])) if energies is not None and len(energies) else (0, 1e9)
    out: list[dict[str, Any]] = []
    for item in elements:
        if not item["present"]:
            continue
        el = item["element"]
        color = color_hex(el)
        groups = element_line_groups(el, tube_kv)
        if not groups:  # physics has no excited line group: the lines identify reported
            groups = [
                {"element": el, "line": name, "keV": kev, "rel": 1.0 if i == 0 else 0.5}
                for i, (name, kev) in enumerate(_given_lines(item["lines"]))
            ]
        first = True
        for g in groups:
            if not lo <= g["keV"] <= hi:
                continue
            line = str(g["line"]).removeprefix(el).strip()
            out.append(
                {
                    "element": el,
                    "line": line,
                    "label": f"{el} {line}".strip(),
                    "keV": g["keV"],
                    "rel": g["rel"],
                    "color": color,
                    "kind": "element",
                    "status": item["status"],
                    "main": first,
                    "text": el + ("?" if item["status"].strip().lower() == "possible" else ""),
                }
            )
            first = False
    for item in instrument:
        if lo <= item["keV"] <= hi:
            out.append(
                {
                    "element": None,
                    "line": item["kind"],
                    "label": item["name"] or item["kind"],
                    "keV": item["keV"],
                    "rel": 0.5,
                    "color": "#888888",
                    "kind": "instrument",
                    "status": item["kind"],
                    "main": False,
                    "text": item["name"] or item["kind"],
                }
            )
    return out


def _given_lines(lines: list[Any]) -> list[tuple[str, float]]:
    """Distinct lines as stored by identify, when they carry energies: ``[(name, keV)]``."""
    out: dict[tuple[str, float], None] = {}
    for ln in lines:
        if isinstance(ln, Mapping):
            kev = _finite(ln.get("keV", ln.get("energy_keV")))
            name = str(ln.get("line", ln.get("name", ln.get("siegbahn", ""))))
            if kev is not None:
                out[(name, round(kev, 3))] = None
    return list(out)
