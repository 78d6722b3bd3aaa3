"""Scattering: Compton shift, the angle from a Compton energy."""

from __future__ import annotations

import math

import numpy as np

from maxrf.errors import ParameterError
from maxrf.physics.constants import COMPTON_BROADENING, ELECTRON_REST_KEV


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
