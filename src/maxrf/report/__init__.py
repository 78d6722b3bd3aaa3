"""Self-contained HTML reports of a DataStack, for colleagues without Python.

``write_report(ds, path)`` writes one HTML file with everything embedded (spectra as SVG,
maps as PNG ``data:`` URIs, inline CSS; no network needed): scan summary and provenance,
calibration, the sum and max spectra with the identified lines labelled, the identified
elements, the element and peak map galleries (linear and equalised, with colour bars), the
hotmax spectra and the speckle table. Layers that are missing are marked "not computed"
with the command that computes them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from maxrf.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'maxrf.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
