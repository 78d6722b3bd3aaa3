"""Constants of the physics models: typed once, imported everywhere.

Atomic data come from xraydb; these are model and instrument parameters."""

from __future__ import annotations

import math

from scipy.constants import c, e, h, physical_constants

#: electron rest energy (keV), CODATA via scipy
ELECTRON_REST_KEV: float = physical_constants["electron mass energy equivalent in MeV"][0] * 1e3
#: photon energy times wavelength (keV Angstrom), CODATA via scipy
HC_KEV_ANGSTROM: float = h * c / e * 1e7
#: Gaussian FWHM / sigma
FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Fano factor of silicon (model parameter)
FANO_SI: float = 0.114
#: energy per electron-hole pair in silicon (keV)
PAIR_ENERGY_SI_KEV: float = 3.85e-3
#: energy (keV) at which ``fwhm_at_6keV`` is specified (Mn K-alpha)
FWHM_REFERENCE_KEV: float = 5.9
#: exponent of the photo-absorption cross-section ~ E**-n used for the over-voltage factor
PHOTO_EXPONENT: float = 2.7
#: supported X-ray tube anodes
ANODES: tuple[str, ...] = ("Rh", "Mo", "W", "Ag", "Cr", "Cu")
#: elements of the primary-beam filters XRF scanners carry (Al, Ti, Ni of Bruker's M4 and
#: M6; Cu, Zr, Mo, Pd, Ag of other instruments' sets and of K-edge filters for an anode's
#: K lines)
PRIMARY_FILTER_ELEMENTS: tuple[str, ...] = ("Al", "Ti", "Ni", "Cu", "Zr", "Mo", "Pd", "Ag")
#: supported detector crystals for escape peaks
DETECTORS: tuple[str, ...] = ("Si", "Ge")

# continuum model (instrument parameters)
_TUBE_BE_UM = 100.0  # tube exit window (Be, micrometre)
_DETECTOR_BE_UM = 12.0  # detector window (Be, micrometre)
_AIR_CM = 2.0  # total air path tube -> sample -> detector (cm)
#: light matrix that scatters the tube's photons (cellulose: paper, and close to the
#: canvas, grounds' binders and acrylic blanks the scanners see)
SCATTER_MATRIX: str = "C6H10O5"
_MATRIX = (SCATTER_MATRIX, 1.0)  # scattering matrix of the continuum (formula, g/cm3)

#: Fano-law slope (keV) of silicon: ``FWHM**2 = noise**2 + FANO_SLOPE * E``
FANO_SLOPE: float = FWHM_PER_SIGMA**2 * FANO_SI * PAIR_ENERGY_SI_KEV
#: default detector FWHM (keV) at 5.9 keV, before the resolution is measured (a typical SDD)
DEFAULT_FWHM_KEV: float = 0.145
#: smallest FWHM (keV) at 5.9 keV a silicon detector can have: the Fano limit (no noise)
MIN_FWHM_KEV: float = math.sqrt(FANO_SLOPE * FWHM_REFERENCE_KEV)
#: Doppler broadening of the Compton peak: extra FWHM (keV, in quadrature) =
#: ``COMPTON_BROADENING * E * sqrt(2 (1 - cos theta))`` (0.30 keV at Rh K-alpha, 90 degrees)
COMPTON_BROADENING: float = 0.0105
