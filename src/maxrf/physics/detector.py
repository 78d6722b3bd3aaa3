"""Detector response: resolution (Fano law), escape peaks."""

from __future__ import annotations

import functools
import math

import numpy as np

from maxrf.errors import ParameterError
from maxrf.physics import table
from maxrf.physics.constants import (
    DEFAULT_FWHM_KEV,
    DETECTORS,
    FANO_SLOPE,
    FWHM_REFERENCE_KEV,
    MIN_FWHM_KEV,
)
from maxrf.physics.lines import _check_positive, line_energy, normalize_element


def _detector(detector: str) -> str:
    symbol = normalize_element(detector) if isinstance(detector, str) else detector
    if symbol not in DETECTORS:
        raise ParameterError(f"detector must be one of {', '.join(DETECTORS)}; got {detector!r}")
    return symbol


def escape_energy(keV: float | np.ndarray, detector: str = "Si") -> float | np.ndarray:
    """Energy of the detector K-alpha escape peak of a line.

    Parameters
    ----------
    keV : float or array_like
        Line energy (keV).
    detector : {'Si', 'Ge'}
        Detector crystal.

    Returns
    -------
    float or numpy.ndarray
        ``keV - E(K-alpha of the detector)`` (keV); Si K-alpha = 1.740 keV from xraydb.
    """
    out = np.asarray(keV, dtype=float) - line_energy(_detector(detector), "Ka")
    return float(out) if out.ndim == 0 else out


@functools.lru_cache(maxsize=4)
def _escape_constants(det: str) -> tuple[float, float, float, float]:
    k = table.element_data(det)[1]["K"]
    ka = line_energy(det, "Ka")
    mu_k = float(table.mu_elam(det, ka * 1e3, kind="photo")[0])
    return float(k.energy) / 1e3, float(k.fyield), float(k.jump_ratio), mu_k


def escape_fraction(keV: float | np.ndarray, detector: str = "Si") -> float | np.ndarray:
    """Fraction of photons of a line that end in the detector's K-alpha escape peak.

    Reed & Ware (1972), normal incidence, semi-infinite crystal::

        f = 0.5 * omega_K * (1 - 1/J_K) * (1 - (mu_K/mu_E) * ln(1 + mu_E/mu_K))

    with ``mu_E`` / ``mu_K`` the photo-absorption coefficients of the crystal at the line
    energy and at its own K-alpha energy (xraydb). Zero below the crystal's K edge.

    Parameters
    ----------
    keV : float or array_like
        Line energy (keV).
    detector : {'Si', 'Ge'}
        Detector crystal.

    Returns
    -------
    float or numpy.ndarray
        Escape fraction (0..1).
    """
    det = _detector(detector)
    edge, omega, jump, mu_k = _escape_constants(det)
    e = np.atleast_1d(np.asarray(keV, dtype=float))
    out = np.zeros_like(e)
    above = e > edge
    if np.any(above):
        mu_e = np.atleast_1d(table.mu_elam(det, e[above] * 1e3, kind="photo"))
        ratio = mu_k / mu_e
        out[above] = 0.5 * omega * (1 - 1 / jump) * (1 - ratio * np.log1p(1 / ratio))
    out = np.clip(out, 0.0, 1.0)
    return float(out[0]) if np.ndim(keV) == 0 else out.reshape(np.shape(keV))


def _fano_term(fwhm_at_6keV: float) -> tuple[float, float]:
    """(noise**2, slope) of FWHM**2 = noise**2 + slope * E (keV**2, keV)."""
    f6 = _check_positive("fwhm_at_6keV", fwhm_at_6keV)
    slope = FANO_SLOPE
    noise2 = f6**2 - slope * FWHM_REFERENCE_KEV
    if noise2 < 0:
        raise ParameterError(
            f"fwhm_at_6keV={fwhm_at_6keV!r} keV is below the Fano limit of silicon "
            f"({MIN_FWHM_KEV:.4f} keV at {FWHM_REFERENCE_KEV} keV)"
        )
    return noise2, slope


def fwhm_keV(keV: float | np.ndarray, fwhm_at_6keV: float = DEFAULT_FWHM_KEV) -> float | np.ndarray:
    """Detector energy resolution (FWHM) with Fano statistics.

    ``FWHM**2 = noise**2 + 2.3548**2 * F * eps * E`` with ``F = 0.114``, ``eps = 3.85 eV``;
    ``noise`` is chosen so that the FWHM at 5.9 keV (Mn K-alpha) equals ``fwhm_at_6keV``.

    Parameters
    ----------
    keV : float or array_like
        Photon energy (keV); negative energies get the noise FWHM.
    fwhm_at_6keV : float
        FWHM (keV) at 5.9 keV; at least the Fano limit (0.120 keV).

    Returns
    -------
    float or numpy.ndarray
        FWHM (keV).
    """
    noise2, slope = _fano_term(fwhm_at_6keV)
    e = np.maximum(np.asarray(keV, dtype=float), 0.0)
    out = np.sqrt(noise2 + slope * e)
    return float(out) if out.ndim == 0 else out


def fwhm_at_6keV_from(fwhm: float, keV: float) -> float | None:
    """Detector FWHM at 5.9 keV (keV) that the Fano law gives a peak ``fwhm`` (keV) wide at
    ``keV`` (the inverse of :func:`fwhm_keV`).

    Parameters
    ----------
    fwhm : float
        Measured FWHM (keV) of a single line, e.g. the zero peak's at 0 keV.
    keV : float
        Its energy (keV); negative energies count as 0, as in :func:`fwhm_keV`.

    Returns
    -------
    float or None
        FWHM (keV) at 5.9 keV; None when ``fwhm`` is narrower than the Fano law allows at
        ``keV`` (no electronic noise left), or not finite.
    """
    e = max(float(keV), 0.0)
    n2 = float(fwhm) ** 2 - FANO_SLOPE * e
    if not (math.isfinite(n2) and n2 > 0):
        return None
    return math.sqrt(n2 + FANO_SLOPE * FWHM_REFERENCE_KEV)


def noise_fwhm_keV(fwhm_at_6keV: float = DEFAULT_FWHM_KEV) -> float:
    """Electronic noise FWHM (keV): the width of the zero peak.

    Parameters
    ----------
    fwhm_at_6keV : float
        FWHM (keV) at 5.9 keV.

    Returns
    -------
    float
        ``fwhm_keV(0, fwhm_at_6keV)`` (keV).
    """
    return float(fwhm_keV(0.0, fwhm_at_6keV))
