"""Plots (matplotlib only here). Every function returns matplotlib objects, never blocks,
never prompts, and computes no more than it draws.

A package rather than one module, so each family of plots sits beside its subject:
``plot.spectra`` (calibration, hotmax spectra), ``plot.puzzle`` (line patterns, the
peak-pattern puzzle), ``plot.maps`` (peak slices, map grids, speckles).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "plot_calibration": "spectra",
    "plot_spectrum": "spectra",
    "plot_spectra": "spectra",
    "plot_ptrn": "puzzle",
    "plot_puzzle": "puzzle",
    "plot_patterns": "puzzle",
    "plot_peak_slices": "maps",
    "multi_plot": "maps",
    "plot_map": "maps",
    "plot_speckles": "maps",
    "plot_segmentation": "segmentation",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'maxrf.plot' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"maxrf.plot.{module}"), name)
