"""Thresholds and model uncertainties of the element identification.

Every tuning constant of :mod:`maxrf.identify` (the tests of a present / possible element,
the systematic uncertainties of the fit, the candidate window, the excluded and common
elements) lives here, so the other modules of the package share one set.
"""

from __future__ import annotations

import math

#: chi-square improvement (likelihood-ratio statistic) needed for ``present`` (5 sigma)
DCHI2_PRESENT: float = 25.0
#: ... and for ``possible`` (3 sigma)
DCHI2_POSSIBLE: float = 9.0
#: significance of the element's fitted line counts (counts / standard error) for ``present``
Z_PRESENT: float = 5.0
#: ... and for ``possible``
Z_POSSIBLE: float = 3.0
#: significance at which the confidence is one half (all lines seen)
Z_HALF: float = 5.0
#: share of the expected-visible lines (weighted by expected significance) seen, for present
LINE_FRACTION_PRESENT: float = 0.75
#: a line is expected to be seen when its fitted area is this many standard errors of a local
#: fit (and its height rises above the noise envelope): lines near the limit do not count
VISIBLE_Z: float = 6.0
#: expected significance (sigma) above which all visible lines weigh the same in the line
#: fraction
SIGNIFICANCE_CAP: float = 20.0
#: a line counts as seen when its local amplitude is at least this share of the expected one
LINE_RATIO_MIN: float = 0.25
#: local significance (sigma) of a seen line
LINE_Z_MIN: float = 3.0
#: relative uncertainty of the model on the wings of its peaks (within 1.5 FWHM): shape
#: and energy-calibration errors
WING_ERROR: float = 0.01
#: detector dynamic range: a residual smaller than this share of the largest modelled peak
#: up to 1 keV above it is treated as detector response (the low-energy tail and shelf of
#: incomplete charge collection), not as a line
DYNAMIC_RANGE: float = 0.002
#: a seen line may be off its expected energy by this many FWHM (plus two standard errors)
SHIFT_FWHM: float = 0.25
#: relative uncertainty of modelled intensities, by line family / L sub-shell / component
#: kind: the K-beta/K-alpha ratios are transition probabilities (good), L sub-shell and M
#: vacancy shares depend on the excitation (uncertain), escape fractions on the detector
SYSTEMATIC: dict[str, float] = {
    "K": 0.05, "L3": 0.10, "L2": 0.25, "L1": 0.30, "M": 0.30, "escape": 0.5,
    "rayleigh": 0.05, "compton": 0.15, "air": 0.10, "sum": 0.30, "tail": 0.5, "element": 0.05,
}
#: L sub-shell groups (L1, L2, L3) may differ from the model ratios by this factor
SUBSHELL_SLACK: float = 1.5
#: K-beta of an element with Z <= 17 may be as weak as this share of the model's
LIGHT_KBETA_MIN: float = 0.2
#: a line family below this energy (keV) may be absorbed away (air, windows, the sample)
SOFT_KEV: float = 4.0
#: a line family above this energy (keV) may be lost to the detector's falling efficiency
HARD_KEV: float = 20.0
#: a line family whose edge is excited with less over-voltage than this is uncertain
MIN_OVERVOLTAGE: float = 2.0
#: a peak's low-energy tail holds at most this share of its area
TAIL_MAX: float = 0.15
#: significance (area / standard error) of a labelled instrument peak below the envelope
INSTRUMENT_Z: float = 5.0
#: a present element whose counts are below this share of the strongest element is a trace
TRACE_FRACTION: float = 0.01
#: candidate elements: a line within this many FWHM of an observed peak
CANDIDATE_WINDOW_FWHM: float = 1.5
#: lines closer than this many FWHM are one peak of a pattern (Ka1 + Ka2)
MERGE_FWHM: float = 0.5
#: a line family's (and the escape peaks') efficiency may exceed the model by this share
FAMILY_SLACK: float = 0.15
#: sum (pile-up) peaks are modelled for every pair of this many strongest fitted lines (the
#: pile-up of two major elements of a paint layer can stand where a third element's line is)
N_SUM_LINES: int = 5
#: a line whose area is this many standard errors of a local fit counts as standing out
#: even where its per-channel height is under the noise envelope (many narrow channels)
STRONG_Z: float = 4.0
#: significance (sigma) of an observed peak
PEAK_SIGMA: float = 4.0
#: lowest energy (keV) fitted (the zero peak and the detector's cut-off lie below)
MIN_FIT_KEV: float = 0.8
#: elements never proposed: noble gases (argon is an instrument peak) and elements too
#: short-lived to be in an artwork
EXCLUDED: frozenset[str] = frozenset(
    {"Ne", "Ar", "Kr", "Xe", "Rn", "Tc", "Pm", "Po", "At", "Fr", "Ra", "Ac", "Pa"}
)
#: elements common in artworks (pigments, grounds, metals, supports): any other element needs
#: at least two of its lines seen to be present (above SOFT_KEV when it has visible lines
#: there) -- a single peak of a rare element is more likely a diffraction or an unmodelled
#: detector peak
COMMON_ELEMENTS: frozenset[str] = frozenset(
    "Na Mg Al Si P S Cl K Ca Ti Cr Mn Fe Co Ni Cu Zn As Se Sr Zr Ag Cd Sn Sb Ba Au Hg Pb Bi".split()
)
#: statuses, strongest first
STATUSES: tuple[str, ...] = ("present", "possible", "absent")

_SQRT2PI = math.sqrt(2.0 * math.pi)
