"""Scattering: Compton shift, the angle from a Compton energy, and how much of each kind
(Rayleigh, Compton) a light matrix scatters at a given energy and angle."""

from __future__ import annotations

import math

import numpy as np

from maxrf.errors import ParameterError
from maxrf.physics import table
from maxrf.physics.constants import COMPTON_BROADENING, ELECTRON_REST_KEV, HC_KEV_ANGSTROM, SCATTER_MATRIX


def compton_shift(keV: float | np.ndarray, theta_deg: float | np.ndarray) -> float | np.ndarray:
    """Energy of a photon Compton-scattered through an angle.

    ``E' = E / (1 + E / (m_e c^2) * (1 - cos theta))``.

    Parameters
    ----------
    keV : float or array_like
        Incident photon energy (keV).
    theta_deg : float or array_like
        Scattering angle (degrees); broadcast against ``keV``.

    Returns
    -------
    float or numpy.ndarray
        Scattered photon energy (keV).
    """
    e = np.asarray(keV, dtype=float)
    t = np.deg2rad(np.asarray(theta_deg, dtype=float))
    out = e / (1.0 + e / ELECTRON_REST_KEV * (1.0 - np.cos(t)))
    return float(out) if out.ndim == 0 else out


def detector_angle(
    compton_keV: float | np.ndarray, anode_keV: float | np.ndarray
) -> float | np.ndarray:
    """Scattering angle from the Compton peak position (inverse of :func:`compton_shift`).

    Parameters
    ----------
    compton_keV : float or array_like
        Energy of the Compton-scattered peak (keV).
    anode_keV : float or array_like
        Energy of the incident (Rayleigh) line (keV).

    Returns
    -------
    float or numpy.ndarray
        Scattering angle (degrees, 0..180).

    Raises
    ------
    ParameterError
        The Compton energy is not between the 180-degree limit and the incident energy.
    """
    ec = np.asarray(compton_keV, dtype=float)
    e0 = np.asarray(anode_keV, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_t = 1.0 - ELECTRON_REST_KEV * (1.0 / ec - 1.0 / e0)
    tol = 1e-9
    if not np.all((ec > 0) & (e0 > 0) & (cos_t >= -1 - tol) & (cos_t <= 1 + tol)):
        raise ParameterError(
            f"Compton energy {compton_keV!r} keV is impossible for incident {anode_keV!r} keV "
            "(it must lie between the 180-degree backscatter energy and the incident energy)"
        )
    out = np.rad2deg(np.arccos(np.clip(cos_t, -1.0, 1.0)))
    return float(out) if out.ndim == 0 else out


def compton_extra_fwhm(
    keV: float | np.ndarray, theta_deg: float, broadening: float = COMPTON_BROADENING
) -> float | np.ndarray:
    """Doppler broadening of a Compton peak: extra FWHM (keV, added in quadrature).

    ``broadening * E * sqrt(2 (1 - cos theta))``, ``E`` the incident energy (keV).
    """
    out = broadening * np.asarray(keV, dtype=float) * math.sqrt(
        2.0 * (1.0 - math.cos(math.radians(theta_deg))))
    return float(out) if out.ndim == 0 else out


def scatter_cross_sections(
    keV: float | np.ndarray, theta_deg: float, formula: str = SCATTER_MATRIX
) -> tuple[np.ndarray, np.ndarray]:
    """Differential Rayleigh and Compton cross-sections of a material at one angle.

    Rayleigh: ``(1 + cos^2 theta) / 2 * f0(q)^2`` per atom, with the atomic form factor
    ``f0`` (:func:`maxrf.physics.table.form_factor`) at ``q = sin(theta / 2) / lambda``.
    Compton: the Klein-Nishina factor times the incoherent scattering function, taken as
    ``S(q) = Z (1 - (f0(q) / Z)^2)`` (independent electrons sharing the atom's form
    factor): right at both ends (0 in the forward direction, ``Z`` at large ``q``) and
    within a factor 1.6 of Elam's angle-integrated ratio over 2-60 keV in light matrices
    (it overstates Compton at low ``q``). This is what makes the Compton partner of a
    tube's L line (2-3 keV) tens of times weaker beside its Rayleigh peak than that of its
    K line (17-22 keV), as real blanks show.

    Parameters
    ----------
    keV : float or array_like
        Incident photon energy (keV).
    theta_deg : float
        Scattering angle (degrees).
    formula : str
        Chemical formula of the scattering matrix.

    Returns
    -------
    rayleigh, compton : numpy.ndarray
        Cross-sections per formula unit, in units of the classical electron radius
        squared per steradian, the shape of ``keV``.
    """
    e = np.atleast_1d(np.asarray(keV, dtype=float))
    if np.any(e <= 0):
        raise ParameterError(f"photon energies must be positive, got {keV!r}")
    t = math.radians(float(theta_deg))
    q = math.sin(t / 2.0) * e / HC_KEV_ANGSTROM
    c = math.cos(t)
    k = 1.0 / (1.0 + e / ELECTRON_REST_KEV * (1.0 - c))  # E' / E
    klein_nishina = 0.5 * k**2 * (k + 1.0 / k - (1.0 - c**2))
    rayleigh = np.zeros_like(e)
    compton = np.zeros_like(e)
    for element, n in table.composition(formula).items():
        z = table.atomic_number(element)
        f = np.clip(table.form_factor(element, q), 0.0, z)
        rayleigh += n * 0.5 * (1.0 + c**2) * f**2
        compton += n * klein_nishina * z * (1.0 - (f / z) ** 2)
    shape = np.shape(keV)
    return rayleigh.reshape(shape), compton.reshape(shape)


def compton_to_rayleigh(
    keV: float | np.ndarray, theta_deg: float, formula: str = SCATTER_MATRIX
) -> float | np.ndarray:
    """Ratio of Compton to Rayleigh scatter of a material at one angle (see
    :func:`scatter_cross_sections`): how strong a scattered line's Compton partner is
    beside its Rayleigh peak, before the detector and the sample's absorption."""
    rayleigh, compton = scatter_cross_sections(keV, theta_deg, formula)
    out = compton / np.maximum(rayleigh, 1e-300)
    return float(out) if out.ndim == 0 else out
