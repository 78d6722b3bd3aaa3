"""Report section: the element maps over the photograph the scan is registered to.

The photo (reduced to ``max_side``) is embedded as a JPEG, each element map warped onto the
same grid as a PNG with transparency; a selector picks the element, a slider the opacity
and a second slider swipes between photo and map. Self-contained HTML + a few lines of JS.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from maxrf.report.figures import esc

__all__ = ["overlay_section"]

MAX_OVERLAY_MAPS = 8


def _uri(img: np.ndarray, fmt: str) -> str:
    from PIL import Image

    buf = io.BytesIO()
    mode = "RGBA" if img.shape[-1] == 4 else "RGB"
    Image.fromarray(img, mode=mode).save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def overlay_section(ds: Any, max_side: int = 1024) -> str:
    """HTML body of the "Maps on the photograph" section (empty note if it cannot be drawn)."""
    from maxrf.errors import MaxrfError
    from maxrf.export.overlay import PALETTE, overlay_rgba, warp_to_photo
    from maxrf.io.photo import read_photo, sha256_file
    from maxrf.registration.register import element_stack
    from maxrf.registration.result import read_registration

    reg = read_registration(ds)
    verdict = (f'<p class="verdict" data-quality="{esc(reg.quality)}">Registration '
               f"<b>{esc(reg.quality)}</b> ({esc(reg.method)}), {reg.scale:.3g} photo pixels per scan "
               f"pixel, residual RMS {reg.rms_px:.3g} photo pixels; photo {esc(reg.photo_path)}.</p>")
    try:
        if sha256_file(reg.photo_path) != reg.photo_sha256:
            return verdict + '<p class="missing">The photo file has changed since the registration.</p>'
        photo = read_photo(reg.photo_path, max_side=max_side)
    except (MaxrfError, OSError) as exc:
        return verdict + f'<p class="missing">The photo cannot be read: {esc(str(exc))}</p>'
    if reg.quality == "failed":
        return verdict + '<p class="missing">No overlay: the registration failed.</p>'
    elements: list[str] = []
    if "element_maps" in ds.layers:
        elements = list(ds.read("element_maps", lazy=True).attrs.get("elements", []))[:MAX_OVERLAY_MAPS]
    layers = []
    if elements:
        stack, _ = element_stack(ds, elements)
        for k, (el, m) in enumerate(zip(elements, stack)):
            w = warp_to_photo(m, reg.matrix, photo.size, photo.factor)
            w = w[: photo.image.shape[0], : photo.image.shape[1]]
            layers.append((el, _uri(overlay_rgba(w, PALETTE[k % len(PALETTE)], 1.0), "PNG")))
    base = _uri(np.clip(photo.image * 255 + 0.5, 0, 255).astype(np.uint8), "JPEG")
    options = "".join(f'<option value="{i}">{esc(el)}</option>' for i, (el, _) in enumerate(layers))
    imgs = "".join(f'<img class="ov-map" data-i="{i}" src="{u}" alt="{esc(el)} map on the photo" '
                   f'style="position:absolute;left:0;top:0;width:100%;{"" if i == 0 else "display:none;"}'
                   f'opacity:0.7">' for i, (el, u) in enumerate(layers))
    controls = (
        f'<div class="ov-controls"><label>map <select class="ov-el">{options}</select></label> '
        '<label>opacity <input class="ov-opacity" type="range" min="0" max="100" value="70"></label> '
        '<label>swipe <input class="ov-swipe" type="range" min="0" max="100" value="100"></label></div>'
        if layers else '<p class="missing">No element maps to overlay: run <code>maxrf maps</code>.</p>')
    script = """<script>(function(){var s=document.currentScript.parentNode;
var imgs=s.querySelectorAll('.ov-map'),el=s.querySelector('.ov-el'),op=s.querySelector('.ov-opacity'),
sw=s.querySelector('.ov-swipe');if(!el)return;function upd(){imgs.forEach(function(im){
var on=im.dataset.i===el.value;im.style.display=on?'':'none';im.style.opacity=op.value/100;
im.style.clipPath='inset(0 '+(100-sw.value)+'% 0 0)';});}
[el,op,sw].forEach(function(c){c.addEventListener('input',upd);});upd();})();</script>"""
    return (f'<div class="photo-overlay">{verdict}{controls}'
            f'<div class="ov-stage" style="position:relative;display:inline-block;max-width:100%">'
            f'<img class="ov-photo" src="{base}" alt="photograph" style="display:block;max-width:100%">'
            f"{imgs}</div>{script}</div>")
