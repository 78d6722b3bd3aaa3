"""X-ray physics for MA-XRF: emission line tables, scattering, detector response.

Every atomic quantity (line energies, transition probabilities, fluorescence yields,
absorption edges and jump ratios, Coster-Kronig probabilities, attenuation coefficients)
comes from :mod:`xraydb` (copied by :mod:`maxrf.physics.table` into a table shipped with
maxrf, so that a process need not import xraydb's database); nothing atomic is typed by
hand here. The few numbers that are typed are *model* or *instrument* parameters (the
Fano factor and pair energy of silicon, the photo-absorption exponent, window
thicknesses...), named as module constants.

Relative line intensities (:func:`element_lines`)
-------------------------------------------------
For every emission line of an element (``xraydb.xray_lines``) the relative intensity is::

    rel = n(initial level) * omega(initial level) * transition probability

* ``transition probability``: ``XrayLine.intensity`` (xraydb normalises it per initial
  level).
* ``omega``: the fluorescence yield of the initial level (``xraydb.xray_edge``).
* ``n``: the vacancy rate of the initial level. The primary rate of a shell ``s`` with
  edge ``E_s`` and jump ratio ``J_s`` is ``(1 - 1/J_s) * g(E0 / E_s)`` when ``E_s`` is
  below the tube voltage ``E0``, else 0. ``(1 - 1/J_s)`` is the share of the
  photo-absorption just above the edge that goes to shell ``s`` (the L1 and L2 jump
  ratios are the ones xraydb tabulates, not estimates). ``g`` is an over-voltage factor:
  the Kramers bremsstrahlung spectrum ``(E0 - E)/E`` times a photo-absorption
  cross-section ``~ E**-2.7`` integrated from the edge to ``E0``, scaled so that ``g -> 1``
  for ``E0 >> E_s`` and ``g = 0`` at ``E0 = E_s``; it makes K lines of elements whose K
  edge is close to the tube voltage (Sn, Sb, Ba at 40 kV) weak, as they are. The shells
  share one absolute cross-section scale (a simplification). L sub-shell vacancies are
  redistributed by Coster-Kronig transitions (``xraydb.ck_probability``):
  ``n1 = P1``, ``n2 = P2 + f12 P1``, ``n3 = P3 + f23 P2 + f13' P1`` (``f13'`` includes the
  L1->L2->L3 path). M sub-shells use their primary rates (no Coster-Kronig).
  A combined initial level such as ``M4,5`` uses its first sub-shell (``M4``).
* Intensities are normalised so that the strongest line *kept* (edge below ``E0``, energy
  at least ``min_keV``) is 1; lines below ``min_rel`` are dropped.

Left out: excitation by the anode's characteristic lines, cascade vacancies (K -> L),
matrix absorption and enhancement, air and detector-window absorption of the emitted
lines, detector efficiency.

Detector
--------
Resolution: ``FWHM**2 = noise**2 + 2.3548**2 * F * eps * E`` with Fano factor
``F = 0.114`` and ``eps = 3.85 eV`` per electron-hole pair in silicon. ``fwhm_at_6keV``
is the FWHM at **5.9 keV** (Mn K-alpha, how detector resolution is specified); the
electronic noise term is solved from it. Escape peaks: Si K-alpha escape at ``E - 1.740``
keV with the Reed & Ware (1972) escape fraction for normal incidence, computed from
xraydb attenuation coefficients (about 1.4 % just above the Si K edge, 0.3 % at Fe K-alpha,
under 0.1 % above 10 keV).

Scatter
-------
Rayleigh and Compton differential cross-sections of a light matrix (cellulose by default)
from the atomic form factors and the Klein-Nishina law (:func:`scatter_cross_sections`):
the Compton partner of a scattered tube line grows from a fifth of its Rayleigh peak at
2.7 keV to ten times it at 20 keV (130 degrees), which :func:`scatter_spectrum` applies
line by line.

Templates (:func:`element_spectrum`, :func:`scatter_spectrum`, :func:`zero_peak`) are
per-channel counts for a unit total emitted area: Gaussians integrated exactly over each
channel, so a template sums to 1 over the channels when all of its peaks lie on the axis.
"""

from __future__ import annotations

from maxrf.physics import table
from maxrf.physics.constants import (
    ANODES,
    COMPTON_BROADENING,
    DEFAULT_FWHM_KEV,
    DETECTORS,
    ELECTRON_REST_KEV,
    FANO_SI,
    FANO_SLOPE,
    FWHM_PER_SIGMA,
    FWHM_REFERENCE_KEV,
    MIN_FWHM_KEV,
    PAIR_ENERGY_SI_KEV,
    PHOTO_EXPONENT,
    PRIMARY_FILTER_ELEMENTS,
    SCATTER_MATRIX,
)
from maxrf.physics.detector import (
    escape_energy,
    escape_fraction,
    fwhm_at_6keV_from,
    fwhm_keV,
    noise_fwhm_keV,
)
from maxrf.physics.estimate import FWHM_PLAUSIBLE_KEV, estimate_fwhm, estimate_scatter_angle
from maxrf.physics.lines import (
    Line,
    anode_lines,
    element_color,
    element_lines,
    filter_edge_below,
    k_edge_keV,
    line_energy,
    normalize_element,
)
from maxrf.physics.scatter import (
    compton_extra_fwhm,
    compton_shift,
    compton_to_rayleigh,
    detector_angle,
    scatter_cross_sections,
)
from maxrf.physics.spectra import (
    channel_edges,
    continuum_spectrum,
    element_spectrum,
    excitation_transmission,
    gaussian_peaks,
    line_spectrum,
    peak_profiles,
    scatter_spectrum,
    zero_peak,
)

__all__ = [
    "ANODES",
    "COMPTON_BROADENING",
    "FWHM_PLAUSIBLE_KEV",
    "compton_extra_fwhm",
    "estimate_fwhm",
    "estimate_scatter_angle",
    "DEFAULT_FWHM_KEV",
    "DETECTORS",
    "ELECTRON_REST_KEV",
    "FANO_SI",
    "FANO_SLOPE",
    "FWHM_PER_SIGMA",
    "FWHM_REFERENCE_KEV",
    "MIN_FWHM_KEV",
    "PAIR_ENERGY_SI_KEV",
    "PHOTO_EXPONENT",
    "PRIMARY_FILTER_ELEMENTS",
    "SCATTER_MATRIX",
    "Line",
    "anode_lines",
    "channel_edges",
    "compton_shift",
    "compton_to_rayleigh",
    "continuum_spectrum",
    "detector_angle",
    "element_color",
    "element_lines",
    "filter_edge_below",
    "k_edge_keV",
    "element_spectrum",
    "escape_energy",
    "escape_fraction",
    "excitation_transmission",
    "fwhm_at_6keV_from",
    "fwhm_keV",
    "gaussian_peaks",
    "peak_profiles",
    "line_energy",
    "line_spectrum",
    "normalize_element",
    "noise_fwhm_keV",
    "scatter_cross_sections",
    "scatter_spectrum",
    "table",
    "zero_peak",
]
