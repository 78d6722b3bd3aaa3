"""Baselines, Poisson noise envelopes and peak finding on 1-D spectra (pure functions).

All functions take spectra as 1-D arrays indexed by channel and work in channel units;
energies never enter here (see :mod:`maxrf.calibration` for channel -> keV).

Notes
-----
Counting statistics: a channel with expected count ``b`` fluctuates with standard
deviation ``sqrt(b)`` (Poisson). Spectra that are not raw counts (a mean spectrum over
pixels, a max spectrum) scale differently; :func:`noise_scale` measures the factor
between the observed scatter and ``sqrt(baseline)`` so peak thresholds stay meaningful.

Modules: ``widths`` (checked spectra, :func:`estimate_fwhm_channels`), ``baseline``
(:func:`baseline`, :func:`restore_level`), ``finding`` (noise scale and envelope, sub-peaks,
:func:`find_spectrum_peaks`), ``fit`` (:func:`fit_peaks`, :class:`PeakFit`).
"""

from __future__ import annotations

from maxrf.peaks.baseline import BASELINE_METHODS, baseline, restore_level
from maxrf.peaks.finding import (
    find_spectrum_peaks,
    find_subpeaks,
    get_noise_envelope,
    noise_prominence,
    noise_scale,
)
from maxrf.peaks.fit import PeakFit, fit_peaks
from maxrf.peaks.widths import estimate_fwhm_channels

__all__ = [
    "BASELINE_METHODS",
    "PeakFit",
    "baseline",
    "estimate_fwhm_channels",
    "fit_peaks",
    "find_spectrum_peaks",
    "find_subpeaks",
    "get_noise_envelope",
    "noise_prominence",
    "noise_scale",
    "restore_level",
]
