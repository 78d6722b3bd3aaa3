"""Viewer: the photograph the scan is registered to, maps over it, clicks back to scan pixels.

Endpoints (served by :mod:`maxrf.viewer.server`):

    /api/registration                  {"registered": false} or the registration, photo grid
    /api/photo                         the photo reduced to MAX_SIDE (JPEG)
    /api/photo_overlay?name=KEY        a map warped on that grid (PNG with transparency)
    /api/photo_pixel?x=&y=             the scan pixel beneath a reduced-photo pixel
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from maxrf.viewer.app import NotFoundError, RequestError, check_params, get_float

__all__ = ["PhotoView", "photo_view"]

#: longest side (pixels) of the photo sent to the browser
MAX_SIDE = 1600
_LOCK = threading.Lock()


class PhotoView:
    """The registered photo of a viewer's scan (read once, reduced)."""

    def __init__(self, app: Any):
        self.app = app
        self._photo: Any = None
        self._jpeg: bytes | None = None

    def _registration(self) -> Any:
        from maxrf.registration.result import read_registration

        if "registration" not in self.app.ds.layers:
            return None
        return read_registration(self.app.ds)

    def registration(self) -> dict[str, Any]:
        """JSON description: matrix, verdict, and the reduced photo grid (or not registered)."""
        reg = self._registration()
        if reg is None:
            return {"registered": False}
        out = {"registered": True, **reg.to_dict()}
        try:
            ph = self.photo()
            out.update(display_width=int(ph.image.shape[1]), display_height=int(ph.image.shape[0]),
                       factor=int(ph.factor), photo_readable=True)
        except Exception as exc:  # a moved or changed photo is reported, the scan still viewable
            out.update(photo_readable=False, photo_error=str(exc))
        return out

    def photo(self) -> Any:
        from maxrf.io.photo import read_photo

        with _LOCK:
            if self._photo is None:
                reg = self._registration()
                if reg is None:
                    raise NotFoundError("the scan is not registered to a photograph (maxrf register)")
                self._photo = read_photo(reg.photo_path, max_side=MAX_SIDE)
            return self._photo

    def photo_jpeg(self) -> bytes:
        from PIL import Image

        if self._jpeg is None:
            img = np.clip(self.photo().image * 255 + 0.5, 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=88)
            self._jpeg = buf.getvalue()
        return self._jpeg

    def overlay_png(self, params: Mapping[str, str]) -> bytes:
        """The map ``name`` on the reduced photo grid, coloured, transparent where absent."""
        from PIL import Image

        from maxrf.export.overlay import overlay_rgba, warp_to_photo

        check_params(params, {"name"})
        entry, data = self.app.layer_map({"name": params.get("name", "")})
        reg = self._registration()
        ph = self.photo()
        w = warp_to_photo(data, reg.matrix, ph.size, ph.factor)[: ph.image.shape[0], : ph.image.shape[1]]
        buf = io.BytesIO()
        Image.fromarray(overlay_rgba(w, (255, 40, 40), 1.0), mode="RGBA").save(buf, format="PNG")
        return buf.getvalue()

    def pixel(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Scan ``row, col`` beneath reduced-photo pixel ``x, y`` (``inside`` false off the scan)."""
        check_params(params, {"x", "y"})
        x, y = get_float(params, "x"), get_float(params, "y")
        reg = self._registration()
        if reg is None:
            raise NotFoundError("the scan is not registered to a photograph (maxrf register)")
        f = self.photo().factor
        col, row = reg.to_scan(np.array([[x * f + (f - 1) / 2, y * f + (f - 1) / 2]]))[0]
        h, w = reg.scan_shape
        r, c = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
        inside = bool(0 <= r < h and 0 <= c < w)
        if not np.isfinite(col + row):
            raise RequestError("that point does not map to the scan")
        return {"row": r, "col": c, "inside": inside, "scan_col": float(col), "scan_row": float(row)}


def photo_view(app: Any) -> PhotoView:
    """The app's PhotoView (made on first use)."""
    with _LOCK:
        view = getattr(app, "_photo_view", None)
        if view is None:
            view = PhotoView(app)
            app._photo_view = view
        return view
