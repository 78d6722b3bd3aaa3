"""Plots (matplotlib only here). Every function takes results (never paths), returns
matplotlib objects, never blocks, never prompts, and computes no more than it draws.

Return shape: ``(fig, ax)``, or ``(fig, axes)`` for several panels. The exceptions are
maxrf4u's shapes, listed in :mod:`maxrf.compat`: ``plot_puzzle`` returns ``ax0, ax1``,
``plot_ptrn`` a dict, ``plot_patterns`` the ``ax``.

A package rather than one module, so each family of plots sits beside its subject:
``plot.spectra`` (calibration, hotmax spectra), ``plot.puzzle`` (line patterns, the
peak-pattern puzzle), ``plot.maps`` (peak slices, map grids, speckles), ``plot.images``
(colour maps, PNG bytes and figure capture for the report, the viewer and image export).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module defining it. maxrf4u's plot_peak_slices and plot_puzzle, which
# also accept what they must first compute or open, are the shims in maxrf.compat.
_EXPORTS = {
    "plot_calibration": "maxrf.plot.spectra",
    "plot_spectrum": "maxrf.plot.spectra",
    "plot_spectra": "maxrf.plot.spectra",
    "plot_ptrn": "maxrf.plot.puzzle",
    "plot_puzzle": "maxrf.compat",
    "plot_patterns": "maxrf.plot.puzzle",
    "plot_peak_slices": "maxrf.compat",
    "multi_plot": "maxrf.plot.maps",
    "plot_map": "maxrf.plot.maps",
    "plot_speckles": "maxrf.plot.maps",
    "plot_segmentation": "maxrf.plot.segmentation",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'maxrf.plot' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
