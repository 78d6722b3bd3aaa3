"""maxrf: macro X-ray fluorescence (MA-XRF) scans into calibrated spectra, element
identifications and element maps.

The public names are imported lazily, so ``import maxrf`` is cheap and a notebook
written for maxrf4u runs with ``import maxrf`` (``maxrf.DataStack``, ``maxrf.HotmaxAtlas``,
``maxrf.get_peakmaps``...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # store / convert
    "DataStack": "store",
    "convert": "convert",
    "open_scan": "io.ripple",
    "read_spectrum": "io.spectra",
    "Spectrum": "io.spectra",
    # physics
    "element_lines": "physics",
    "compton_shift": "physics",
    "detector_angle": "physics",
    # calibration
    "calibrate": "calibration",
    "auto_calibrate": "calibration",
    "Calibration": "calibration",
    # peaks / hotmax
    "get_noise_envelope": "peaks",
    "HotmaxAtlas": "hotmax",
    # identification
    "identify": "identify",
    "element_pattern": "identify",
    "instrument_pattern": "identify",
    # maps
    "get_slices": "maps",
    "get_peakmaps": "maps",
    "element_maps": "maps",
    "get_noise_level": "maps",
    "histeq": "maps",
    "sum_image": "maps",
    # speckles
    "SpeckleAtlas": "speckles",
    "region_spectra": "speckles",
    # plots
    "plot_peak_slices": "plot",
    "plot_puzzle": "plot",
    "plot_ptrn": "plot",
    "plot_patterns": "plot",
    "plot_calibration": "plot",
    "multi_plot": "plot",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'maxrf' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"maxrf.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
