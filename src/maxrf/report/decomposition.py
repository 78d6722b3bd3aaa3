"""Report section of the unsupervised maps: component spectra beside their abundance maps,
and the material class map with each class's mean spectrum."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from maxrf.report import figures
from maxrf.report.figures import esc
from maxrf.report.layers import color_hex, element_line_groups, load_layer

#: colours of material classes (Okabe-Ito and Tableau, distinct in print and for most
#: colour-blind readers)
CLASS_COLORS: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                                 "#F0E442", "#000000", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf")


def _markers(elements: list[str], lo: float, hi: float, tube_kv: float) -> list[dict[str, Any]]:
    out = []
    for el in elements:
        for i, g in enumerate(element_line_groups(el, tube_kv)):
            if lo <= g["keV"] <= hi:
                out.append({"element": el, "line": g["line"], "label": f"{el} {g['line']}", "keV": g["keV"],
                            "rel": g["rel"], "color": color_hex(el), "kind": "element", "status": "present",
                            "main": i == 0, "text": el})
    return out


def class_png(labels: np.ndarray) -> bytes:
    """PNG bytes of a class map in :data:`CLASS_COLORS` (negative labels white)."""
    from PIL import Image

    pal = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in CLASS_COLORS], dtype=np.uint8)
    lab = np.asarray(labels)
    rgb = np.full((*lab.shape, 3), 255, dtype=np.uint8)
    ok = lab >= 0
    rgb[ok] = pal[lab[ok] % len(pal)]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def section(rep: Any) -> str:
    """HTML of the section (``rep`` is the report's shared state: datastack, map cards)."""
    layer, st = load_layer(rep.ds, "decomposition", lazy=True)
    if layer is None:
        return (f"<div class='missing'>Not computed: {esc(st.message or 'run maxrf decompose')}. "
                "Run <code>maxrf decompose DATASTACK</code> for components and material classes.</div>")
    attrs = layer.attrs
    comps = np.asarray(layer["components"], dtype=float)
    e = np.asarray(layer["energies"], dtype=float) if "energies" in layer else rep.energies
    edges = np.asarray(layer["edges"])
    lo, hi = int(edges[0]), int(edges[-1])
    tube_kv = float((rep.ds.calibration or {}).get("tube_kv") or 40.0)
    entries = {en.index: en for en in rep.entries()[0] if en.layer == "decomposition"}
    verdict = attrs.get("quality", "?")
    doubts = [c["detail"] for c in attrs.get("checks", []) if not c.get("passed")]
    how = ("number given" if attrs.get("rank", {}).get("chosen") == "given"
           else "as many as rise above the Poisson noise")
    out = [f"<p class='note'>{len(comps)} non-negative components ({how}); verdict <b>{esc(verdict)}</b>"
           + ("" if not doubts else ": " + esc("; ".join(doubts))) + ". Each component is a spectrum "
           "(unit area) and a map of its counts in every pixel; its elements are those whose line "
           "patterns explain it.</p>"]
    for i, comp in enumerate(attrs.get("components", [])):
        els = list(comp.get("elements", []))
        svg = figures.spectrum_svg(
            e[lo:hi], [{"y": comps[i, lo:hi], "label": f"component {i}", "color": "#1f4e8c"}],
            markers=_markers(els, float(e[lo]), float(e[hi - 1]), tube_kv), log=False, height=260,
            title=f"component {i}: {', '.join(els) or 'scatter / background'}", ylabel="share per channel",
            attrs={"data-component": str(i)})
        card = rep._map_card(entries[i]) if i in entries else ""
        out.append(f"<div class='component' data-component-block='{i}'>{svg}{card}</div>")
    out.append(_classes(rep, e, lo, hi))
    return "\n".join(out)


def _classes(rep: Any, e: np.ndarray, lo: int, hi: int) -> str:
    layer, st = load_layer(rep.ds, "clusters", lazy=True)
    if layer is None:
        return "<p class='note'>No material classes (run <code>maxrf cluster</code>).</p>"
    full = np.asarray(layer["labels"][:])  # int16: small even for tens of megapixels
    factor = max(1, -(-max(full.shape) // rep.max_map_side))
    labels = full[::factor, ::factor].astype(int)  # a class per shown pixel, never a mean
    spectra = np.asarray(layer["spectra"], dtype=float)
    pixels = np.asarray(layer["pixels"])
    rows = "".join(
        f"<tr><td><span class='swatch' style='background:{CLASS_COLORS[c % len(CLASS_COLORS)]}'></span>"
        f" {c}</td><td>{int(pixels[c])}</td></tr>" for c in range(len(pixels)))
    series = [{"y": spectra[c, lo:hi], "label": f"class {c}", "color": CLASS_COLORS[c % len(CLASS_COLORS)]}
              for c in range(len(spectra))]
    svg = figures.spectrum_svg(e[lo:hi], series, title="mean spectrum of each class",
                               ylabel="counts per channel per pixel", attrs={"data-spectrum": "classes"})
    note = f" Shown at 1/{factor} resolution." if factor > 1 else ""
    return ("<h3>Material classes</h3><div class='views'><figure>"
            f"<img class='map' data-map='classes' alt='material class map' "
            f"src='{figures.data_uri(class_png(labels), 'image/png')}'>"
            f"<figcaption>class of every pixel (Gaussian mixture on the component abundances).{note}"
            "</figcaption></figure>"
            f"<table class='classes'><tr><th>class</th><th>pixels</th></tr>{rows}</table></div>{svg}")
