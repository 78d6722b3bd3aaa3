"""Spectrum templates: Gaussian peaks per channel, element, scatter, continuum and
zero-peak spectra for a unit emitted area."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr

from maxrf.errors import ParameterError
from maxrf.physics import table
from maxrf.physics.constants import (
    _AIR_CM,
    _DETECTOR_BE_UM,
    _MATRIX,
    _TUBE_BE_UM,
    COMPTON_BROADENING,
    DEFAULT_FWHM_KEV,
    FWHM_PER_SIGMA,
    PHOTO_EXPONENT,
    SCATTER_MATRIX,
)
from maxrf.physics.detector import escape_energy, escape_fraction, fwhm_keV
from maxrf.physics.lines import Line, _check_positive, anode_lines, element_lines
from maxrf.physics.scatter import compton_extra_fwhm, compton_shift, compton_to_rayleigh


def _as_axis(energies: np.ndarray | Sequence[float]) -> np.ndarray:
    e = np.asarray(energies, dtype=float)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise ParameterError(
            "energies must be a 1-D strictly increasing array of at least 2 finite values (keV)"
        )
    return e


def channel_edges(energies_keV: np.ndarray) -> np.ndarray:
    """Channel boundaries (keV) of an energy axis: halfway between the ``(C,)`` centres
    ``energies_keV``, the outer two half a step beyond; ``(C + 1,)``. The axis is not
    checked here: :func:`gaussian_peaks` checks it."""
    e = energies_keV
    edges = np.empty(e.size + 1)
    edges[1:-1] = 0.5 * (e[1:] + e[:-1])
    edges[0] = e[0] - 0.5 * (e[1] - e[0])
    edges[-1] = e[-1] + 0.5 * (e[-1] - e[-2])
    return edges


def peak_profiles(edges_keV: np.ndarray, centres_keV: np.ndarray, fwhm_keV: np.ndarray) -> np.ndarray:
    """Unit-area Gaussian peaks integrated over channels.

    The kernel of :func:`gaussian_peaks` without its checks, for fits that evaluate a
    model thousands of times on one window (the checks cost three times the kernel there).

    Parameters
    ----------
    edges_keV : numpy.ndarray
        ``(C + 1,)`` channel boundaries (keV), increasing (:func:`channel_edges`).
    centres_keV, fwhm_keV : numpy.ndarray
        ``(P,)`` peak centres and FWHM (keV, > 0).

    Returns
    -------
    numpy.ndarray
        ``(C, P)``: the share of each peak's unit area in each channel.
    """
    sigma = fwhm_keV / FWHM_PER_SIGMA
    return np.diff(ndtr((edges_keV[:, None] - centres_keV[None, :]) / sigma[None, :]), axis=0)


def gaussian_peaks(
    energies: np.ndarray | Sequence[float],
    centres_keV: np.ndarray | Sequence[float] | float,
    areas: np.ndarray | Sequence[float] | float,
    fwhm: np.ndarray | Sequence[float] | float,
    *,
    kind: str = "area",
) -> np.ndarray:
    """Spectrum of Gaussian peaks on an energy axis, integrated over each channel.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel centre energies (keV), strictly increasing.
    centres_keV : array_like
        ``(P,)`` peak centres (keV).
    areas : array_like
        ``(P,)`` or ``(..., P)`` peak areas (counts) -- or peak heights (counts per
        channel at the centre) when ``kind='height'``.
    fwhm : float or array_like
        Peak FWHM (keV), one for all or ``(P,)``.
    kind : {'area', 'height'}
        Meaning of ``areas``.

    Returns
    -------
    numpy.ndarray
        ``(..., C)`` counts per channel: each channel holds the integral of the peaks over
        its width, so the sum over channels equals the total area of the parts on the axis.
    """
    e = _as_axis(energies)
    c = np.atleast_1d(np.asarray(centres_keV, dtype=float))
    a = np.asarray(areas, dtype=float)
    if a.ndim == 0:
        a = np.full(c.shape, float(a))
    w = np.broadcast_to(np.asarray(fwhm, dtype=float), c.shape)
    if c.ndim != 1 or a.shape[-1] != c.size:
        raise ParameterError(f"centres_keV {c.shape} and areas {a.shape} must be (P,) and (..., P)")
    if not np.all(w > 0):
        raise ParameterError("fwhm must be > 0 keV")
    sigma = w / FWHM_PER_SIGMA
    if kind == "height":
        width = np.interp(c, e, np.gradient(e))
        a = a * sigma * math.sqrt(2 * math.pi) / width
    elif kind != "area":
        raise ParameterError(f"kind must be 'area' or 'height', got {kind!r}")
    if c.size == 0:
        return np.zeros(a.shape[:-1] + (e.size,))
    return a @ peak_profiles(channel_edges(e), c, w).T


def line_spectrum(
    energies: np.ndarray | Sequence[float],
    centres_keV: np.ndarray | Sequence[float],
    areas: np.ndarray | Sequence[float],
    *,
    fwhm_at_6keV: float = DEFAULT_FWHM_KEV,
    escape: bool = True,
    extra_fwhm_keV: np.ndarray | Sequence[float] | float = 0.0,
    detector: str = "Si",
) -> np.ndarray:
    """Detector response to a set of lines: Gaussians at the detector resolution + escapes.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    centres_keV, areas : array_like
        ``(P,)`` line energies (keV) and areas (counts).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    escape : bool
        Move :func:`escape_fraction` of each line's area to its escape peak.
    extra_fwhm_keV : float or array_like
        Extra width (keV FWHM, added in quadrature), e.g. Compton broadening.
    detector : {'Si', 'Ge'}
        Detector crystal for the escape peaks.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel; the total area (on and off the axis) is
        ``sum(areas)``.
    """
    c = np.atleast_1d(np.asarray(centres_keV, dtype=float))
    a = np.atleast_1d(np.asarray(areas, dtype=float))
    extra = np.broadcast_to(np.asarray(extra_fwhm_keV, dtype=float), c.shape)
    width = np.sqrt(fwhm_keV(c, fwhm_at_6keV) ** 2 + extra**2)
    if escape and c.size:
        f = np.atleast_1d(escape_fraction(c, detector))
        esc = f > 0
        ce = np.atleast_1d(escape_energy(c[esc], detector))
        we = np.sqrt(fwhm_keV(ce, fwhm_at_6keV) ** 2 + extra[esc] ** 2)
        a_main = a * (1 - f)
        c = np.concatenate([c, ce])
        a = np.concatenate([a_main, a[esc] * f[esc]])
        width = np.concatenate([width, we])
    return gaussian_peaks(energies, c, a, width)


def element_spectrum(
    element: str | int,
    energies: np.ndarray | Sequence[float],
    *,
    tube_kv: float = 40.0,
    fwhm_at_6keV: float = DEFAULT_FWHM_KEV,
    escape: bool = True,
    min_keV: float = 1.0,
    min_rel: float = 1e-3,
    detector: str = "Si",
    transmission: Callable[[np.ndarray], np.ndarray] | None = None,
    primary_transmission: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Detector response to one element: the template of maps fits and synthetic scans.

    All lines of :func:`element_lines` at their relative intensities, each a Gaussian at
    the detector resolution :func:`fwhm_keV`, plus the detector escape peaks
    (:func:`escape_fraction` of each line above the detector K edge).

    Parameters
    ----------
    element : str or int
        Chemical symbol or atomic number.
    energies : array_like
        ``(C,)`` channel energies (keV).
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    escape : bool
        Include escape peaks.
    min_keV, min_rel : float
        Passed to :func:`element_lines`.
    detector : {'Si', 'Ge'}
        Detector crystal.
    transmission : callable, optional
        Transmission (0..1) of an absorber as a function of photon energy (keV), applied
        to each line at its own energy: an absorber acts on the photons before the
        detector broadens them, so it scales lines and never shifts or tilts them.
    primary_transmission : callable, optional
        Transmission (0..1) of a primary filter (between tube and sample) as a function of
        photon energy (keV): it scales each line by the share of its initial shell's
        excitation the filter lets through (:func:`excitation_transmission`), so the lines
        of one shell keep their ratios whatever the filter's edges.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel for a unit total emitted area: it sums to 1 when all
        lines lie on the axis (less when some fall off it or are absorbed; all zeros when
        none is excited).
    """
    lines = element_lines(element, tube_kv, min_keV=min_keV, min_rel=min_rel)
    e = _as_axis(energies)
    if not lines:
        return np.zeros(e.size)
    c = np.array([ln.energy_keV for ln in lines])
    a = np.array([ln.rel_intensity for ln in lines])
    a = a / a.sum()
    if transmission is not None:
        a = a * np.asarray(transmission(c), dtype=float)
    if primary_transmission is not None:
        edges = np.array([ln.edge_keV for ln in lines])
        a = a * excitation_transmission(edges, tube_kv, primary_transmission)
    return line_spectrum(e, c, a, fwhm_at_6keV=fwhm_at_6keV, escape=escape, detector=detector)


def excitation_transmission(
    edge_keV: np.ndarray | Sequence[float] | float,
    tube_kv: float,
    transmission: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Share of a shell's excitation that a primary filter lets through.

    ``int T(E) I(E) tau(E) dE / int I(E) tau(E) dE`` from the shell's edge to the tube
    voltage, with ``I`` the tube's continuum (Kramers ``(E0 - E)/E`` through the tube's Be
    window), ``tau ~ E**-PHOTO_EXPONENT`` the shell's photo-absorption and ``T`` the
    filter's transmission. The tube's own lines are left out (a filter passes them as it
    passes the continuum near them).

    Parameters
    ----------
    edge_keV : float or array_like
        Absorption edges (keV) of the shells.
    tube_kv : float
        Tube voltage (kV).
    transmission : callable
        Filter transmission (0..1) as a function of photon energy (keV).

    Returns
    -------
    numpy.ndarray
        One factor (0..1) per edge; 0 for an edge at or above the tube voltage.
    """
    edges = np.atleast_1d(np.asarray(edge_keV, dtype=float))
    grid, weight = _excitation_weight(float(tube_kv))
    filtered = weight * np.asarray(transmission(grid), dtype=float)
    # integrals from each edge up: cumulative sums from the top of the grid
    top_all = np.cumsum(weight[::-1])[::-1]
    top_filtered = np.cumsum(filtered[::-1])[::-1]
    i = np.searchsorted(grid, edges)
    out = np.zeros(edges.size)
    inside = (i < grid.size) & np.isfinite(edges)
    out[inside] = top_filtered[i[inside]] / np.maximum(top_all[i[inside]], 1e-300)
    return out


@functools.lru_cache(maxsize=32)
def _excitation_weight(tube_kv: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid (keV) below the tube voltage and the tube's continuum through its Be window
    times photo-absorption ``E**-PHOTO_EXPONENT`` on it (unnormalised; read-only)."""
    grid = np.linspace(0.5, tube_kv, 2000)[:-1]
    with np.errstate(all="ignore"):
        be = table.mu_elam("Be", grid * 1e3) * table.atomic_density("Be")
    weight = (tube_kv - grid) / grid * np.exp(-be * _TUBE_BE_UM * 1e-4) * grid ** -PHOTO_EXPONENT
    weight = np.nan_to_num(weight, nan=0.0)
    grid.flags.writeable = weight.flags.writeable = False
    return grid, weight


@functools.lru_cache(maxsize=32)
def _continuum_density(tube_kv: float, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Normalised continuum density (1/keV) on a grid 0.1..tube_kv (keV)."""
    grid = np.linspace(min(0.1, tube_kv / 2), tube_kv, n)
    shape = _continuum_shape(grid, tube_kv)
    return grid, shape / _integrate(grid, shape)


def _integrate(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def _continuum_shape(e: np.ndarray, tube_kv: float) -> np.ndarray:
    """Unnormalised scattered bremsstrahlung at energies ``e`` (keV).

    Kramers ``(E0 - E)/E`` x transmission of the tube and detector Be windows and the air
    path x thick-target scattering efficiency ``sigma_scatter / mu_total`` of a
    cellulose-like matrix (all attenuation data from xraydb).
    """
    out = np.zeros_like(e)
    ok = (e >= 0.1) & (e < tube_kv)
    if not np.any(ok):
        return out
    ev = e[ok] * 1e3
    with np.errstate(all="ignore"):
        be = table.mu_elam("Be", ev) * table.atomic_density("Be")
        air = table.material_mu("air", ev)
        formula, rho = _MATRIX
        mu = table.material_mu(formula, ev, density=rho)
        scat = table.material_mu(formula, ev, density=rho, kind="coh") + table.material_mu(
            formula, ev, density=rho, kind="incoh"
        )
        trans = np.exp(-be * (_TUBE_BE_UM + _DETECTOR_BE_UM) * 1e-4 - air * _AIR_CM)
        out[ok] = (tube_kv - e[ok]) / e[ok] * trans * scat / mu
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def continuum_spectrum(
    energies: np.ndarray | Sequence[float], *, tube_kv: float = 40.0
) -> np.ndarray:
    """Scattered bremsstrahlung continuum template (unit area over 0..tube_kv).

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    tube_kv : float
        Tube voltage (kV): the continuum ends there.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel for a unit total area.
    """
    e = _as_axis(energies)
    kv = _check_positive("tube_kv", tube_kv)
    grid, density = _continuum_density(float(kv))
    # integrate the density over each channel (cumulative integral on the fine grid)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    edges = np.clip(channel_edges(e), grid[0], grid[-1])
    return np.diff(np.interp(edges, grid, cum))


def scatter_spectrum(
    energies: np.ndarray | Sequence[float],
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    fwhm_at_6keV: float = DEFAULT_FWHM_KEV,
    l_weight: float = 0.2,
    compton_broadening: float = COMPTON_BROADENING,
    escape: bool = True,
    transmission: Callable[[np.ndarray], np.ndarray] | None = None,
    matrix: str | None = SCATTER_MATRIX,
    lines: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Scatter templates: Rayleigh and Compton peaks of the anode lines, and the continuum.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    theta_deg : float
        Scattering angle tube -> sample -> detector (degrees).
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    l_weight : float
        Factor applied to the anode's L and M lines relative to :func:`anode_lines` when the
        anode also has K lines (the tube window and air absorb them strongly).
    compton_broadening : float
        Doppler broadening of the Compton peak: extra FWHM (keV, in quadrature) =
        ``compton_broadening * E * sqrt(2 (1 - cos theta))`` (0.30 keV at Rh K-alpha, 90
        degrees). The Compton peak's low-energy tail is not modelled.
    escape : bool
        Include detector escape peaks of the scattered lines.
    transmission : callable, optional
        Transmission (0..1) of a primary beam filter versus photon energy (keV), which acts
        on the primary photons: it scales the continuum before the detector broadens it (its
        edge a step as wide as a line) and each anode line's Rayleigh and Compton peaks by
        its value at the line's own energy (a filter never shifts a line).
    matrix : str
        Chemical formula of the scattering matrix: each line's Compton partner is weighed
        by the matrix's Compton-to-Rayleigh ratio at the line's energy and ``theta_deg``
        (:func:`maxrf.physics.compton_to_rayleigh`: an Rh tube's L lines at 2.7 keV get
        partners about 45x weaker, beside their Rayleigh peaks, than its K lines at 130
        degrees). None: every partner the same share (some calibration tests' draws).
    lines : sequence of str, optional
        Siegbahn names of the anode lines whose Rayleigh and Compton peaks to include
        (``'Ka1'``, ``'Lb2,15'``, as :func:`anode_lines` names them); default all. Each
        keeps its area in the whole set, so the parts of a partition sum to the whole.

    Returns
    -------
    dict of str to numpy.ndarray
        ``'rayleigh'``, ``'compton'``, ``'continuum'``: ``(C,)`` counts per channel, each
        for a unit total area; the continuum broadened by the detector's resolution (its
        end at the tube voltage a step as wide as a line there).
    """
    e = _as_axis(energies)
    tube = anode_lines(anode, tube_kv)
    theta = float(theta_deg)
    if not 0.0 <= theta <= 180.0:
        raise ParameterError(f"theta_deg must be in 0..180 degrees, got {theta_deg!r}")
    keep = _selected(tube, lines, f"{anode} at {tube_kv} kV")
    out: dict[str, np.ndarray] = {}
    if tube:
        c = np.array([ln.energy_keV for ln in tube])
        a, ac = _scatter_areas(tube, theta, l_weight, transmission, matrix)
        c, a, ac = c[keep], a[keep], ac[keep]
        out["rayleigh"] = line_spectrum(e, c, a, fwhm_at_6keV=fwhm_at_6keV, escape=escape)
        cc, w = np.asarray(compton_shift(c, theta)), compton_extra_fwhm(c, theta, compton_broadening)
        out["compton"] = line_spectrum(e, cc, ac, fwhm_at_6keV=fwhm_at_6keV, escape=escape, extra_fwhm_keV=w)
    else:
        out["rayleigh"] = np.zeros(e.size)
        out["compton"] = np.zeros(e.size)
    out["continuum"] = _detected_continuum(e, float(tube_kv), float(fwhm_at_6keV), transmission)
    return out


def _selected(tube: Sequence[Line], lines: Sequence[str] | None, what: str) -> np.ndarray:
    """Which of the ``tube``'s lines the Siegbahn names ``lines`` select (all when None);
    a name the tube (``what``) does not have is an error."""
    if lines is None:
        return np.ones(len(tube), dtype=bool)
    wanted, names = set(lines), {ln.siegbahn for ln in tube}
    if wanted - names:
        missing, known = ", ".join(sorted(wanted - names)), ", ".join(sorted(names))
        raise ParameterError(f"{what} has no line(s) {missing}; it has {known}")
    return np.array([ln.siegbahn in wanted for ln in tube], dtype=bool)


def _scatter_areas(
    lines: Sequence[Line], theta: float, l_weight: float,
    transmission: Callable[[np.ndarray], np.ndarray] | None, matrix: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Areas of the anode ``lines``' Rayleigh peaks and of their Compton partners, each
    set of unit sum before a primary filter's ``transmission`` (see
    :func:`scatter_spectrum`)."""
    c = np.array([ln.energy_keV for ln in lines])
    a = np.array([ln.rel_intensity for ln in lines])
    if any(ln.family == "K" for ln in lines):
        a = a * np.array([1.0 if ln.family == "K" else float(l_weight) for ln in lines])
    a = a / a.sum()
    ac = a if matrix is None else a * np.asarray(compton_to_rayleigh(c, theta, matrix))
    ac = ac / ac.sum()
    if transmission is not None:
        t = np.asarray(transmission(c), dtype=float)
        a, ac = a * t, ac * t
    return a, ac


#: energy step (keV) of the grid the continuum is broadened on: fine beside any detector
#: width (>= 40 eV FWHM) and any filter edge's place
_CONTINUUM_STEP_KEV = 0.005
#: width (keV) of the bands within which the detector's resolution is taken as constant
_CONTINUUM_BAND_KEV = 1.0


def _detected_continuum(
    e: np.ndarray, tube_kv: float, fwhm_at_6keV: float,
    transmission: Callable[[np.ndarray], np.ndarray] | None,
) -> np.ndarray:
    """The scattered continuum as the detector records it, per channel of ``e`` (keV).

    The emitted continuum (times a primary filter's transmission, which the photons meet
    before the detector) broadened by the detector's Gaussian resolution, so that its end
    at the tube voltage and a filter's absorption edge are steps as wide as a line there,
    not cliffs between two channels. The resolution changes slowly with energy: each
    1 keV band is broadened at its own width and the bands blended linearly.
    """
    kv = _check_positive("tube_kv", tube_kv)
    lo_e = max(0.05, float(e[0]) - 1.0)
    grid = np.arange(lo_e, kv + 3.0 * float(fwhm_keV(kv, fwhm_at_6keV)), _CONTINUUM_STEP_KEV)
    g0, dens0 = _continuum_density(kv)
    density = np.interp(grid, g0, dens0, left=0.0, right=0.0)
    density[grid > kv] = 0.0
    if transmission is not None:
        density = density * np.asarray(transmission(grid), dtype=float)
    sigma = np.asarray(fwhm_keV(grid, fwhm_at_6keV)) / FWHM_PER_SIGMA / _CONTINUUM_STEP_KEV
    centres = np.arange(grid[0], grid[-1] + _CONTINUUM_BAND_KEV, _CONTINUUM_BAND_KEV)
    broad = np.zeros_like(density)
    band = int(round(_CONTINUUM_BAND_KEV / _CONTINUUM_STEP_KEV))
    for c in centres:
        s = float(np.interp(c, grid, sigma))
        # the band's hat and the reach of its kernel: only that part of the grid counts
        i0 = int(round((c - grid[0]) / _CONTINUUM_STEP_KEV))
        a, b = max(0, i0 - band - int(6 * s)), min(grid.size, i0 + band + int(6 * s) + 1)
        h0, h1 = max(0, i0 - band), min(grid.size, i0 + band + 1)
        if h1 <= h0:
            continue
        part = gaussian_filter1d(density[a:b], s, mode="constant")[h0 - a : h1 - a]
        broad[h0:h1] += np.clip(1.0 - np.abs(grid[h0:h1] - c) / _CONTINUUM_BAND_KEV, 0.0, 1.0) * part
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (broad[1:] + broad[:-1]) * np.diff(grid))])
    edges = np.clip(channel_edges(e), grid[0], grid[-1])
    return np.diff(np.interp(edges, grid, cum))


def zero_peak(energies: np.ndarray | Sequence[float], fwhm: float) -> np.ndarray:
    """The electronic-noise (zero-energy) peak: a unit-area Gaussian at 0 keV.

    Parameters
    ----------
    energies : array_like
        ``(C,)`` channel energies (keV).
    fwhm : float
        Its FWHM (keV), usually :func:`noise_fwhm_keV`.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts per channel; sums to the part of the unit area on the axis.
    """
    return gaussian_peaks(energies, [0.0], [1.0], _check_positive("fwhm", fwhm))
