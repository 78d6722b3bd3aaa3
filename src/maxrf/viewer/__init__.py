"""A local web viewer of a DataStack: maps and spectra side by side.

``serve(ds, port, host)`` starts a small HTTP server (Python's ``http.server``, no other
dependency) on ``127.0.0.1`` by default, serving a page from the package (no CDN) and a
JSON API. Pick an element or peak map, or drag across the spectrum to map any energy
window; click a pixel (or drag a rectangle) on the map to see its spectrum with the
element line markers, over the sum and max spectra. The cube is read lazily: a click
reads one stored chunk.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ViewerApp", "ViewerServer", "make_server", "serve"]


def __getattr__(name: str) -> Any:
    if name == "ViewerApp":
        from maxrf.viewer.app import ViewerApp

        return ViewerApp
    if name in ("ViewerServer", "make_server", "serve"):
        from maxrf.viewer import server

        return getattr(server, name)
    raise AttributeError(f"module 'maxrf.viewer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
