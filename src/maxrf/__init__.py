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

# public name -> submodule that defines it. Functions named like their module (convert,
# identify, verify) are exported under other names: ``maxrf.convert`` must stay the module,
# whatever was imported first.
_ALIASES: dict[str, tuple[str, str]] = {
    "convert_scan": ("convert", "convert"),
    "identify_elements": ("identify", "identify"),
    "verify_datastack": ("verify", "verify"),
}
_EXPORTS: dict[str, str] = {
    # store / convert
    "DataStack": "store",
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
    "build_hotmax": "hotmax",
    # identification
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
    # segmentation
    "segment_map": "segmentation",
    "Segmentation": "segmentation",
    # plots
    "plot_peak_slices": "plot",
    "plot_puzzle": "plot",
    "plot_ptrn": "plot",
    "plot_patterns": "plot",
    "plot_calibration": "plot",
    "plot_spectrum": "plot",
    "plot_spectra": "plot",
    "plot_speckles": "plot",
    "plot_map": "plot",
    "compute_maps": "maps",
    "find_speckles": "speckles",
    "speckle_table": "speckles",
    "make_scan": "synth",
    "run_pipeline": "pipeline",
    "Identification": "identify",
    "multi_plot": "plot",
    # the seed's named line energies (keV)
    **{name: "seed_constants" for name in (
        "IRON_Ka", "RHODIUM_Ka", "CALCIUM_Ka", "TITANIUM_Ka", "MANGANESE_Ka", "IRON_Kb",
        "COPPER_Ka", "ZINC_Ka", "LEAD_La", "LEAD_Lb", "RHODIUM_Kb", "POTASSIUM_Ka",
        "MERCURY_La", "ARSENIC_Ka")},
}

__all__ = sorted([*_EXPORTS, *_ALIASES]) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _ALIASES:
        module, attr = _ALIASES[name]
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name], name
    else:
        raise AttributeError(f"module 'maxrf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"maxrf.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
