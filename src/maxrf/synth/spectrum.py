"""One synthetic point spectrum (for identification tests on single spectra)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.synth.model import (
    _MAX_PILEUP_ELEMENTS,
    _SCATTER_NAMES,
    _SCATTER_SHARES,
    _check_float,
    _Model,
    _pileup_coefficient,
)


def synth_spectrum(
    amplitudes: Mapping[str, float],
    energies: np.ndarray | Sequence[float],
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    theta_deg: float = 90.0,
    fwhm_at_6keV: float = physics.DEFAULT_FWHM_KEV,
    scatter: float | Mapping[str, float] | None = None,
    pileup: bool | float = False,
    rng: np.random.Generator | int | None = None,
    poisson: bool = True,
) -> np.ndarray:
    """One synthetic point spectrum (for identification tests on single spectra).

    Parameters
    ----------
    amplitudes : mapping of str to float
        Element -> total counts of its lines (area of its template).
    energies : array_like
        ``(C,)`` channel energies (keV).
    anode, tube_kv, theta_deg, fwhm_at_6keV
        Instrument, as in :func:`make_scan`.
    scatter : float or mapping, optional
        ``None``: scatter in the default proportions (Compton 10 %, Rayleigh 4 %,
        continuum 15 %, zero peak 1 % of ``sum(amplitudes) / 0.7``); a number: total
        scatter counts in those proportions; a mapping: counts per component
        (``'rayleigh'``, ``'compton'``, ``'continuum'``, ``'zero'``); ``0``: none.
    pileup : bool or float
        Pile-up coefficient (``True``: 0.004), relative to the spectrum's total counts.
    rng : numpy.random.Generator or int, optional
        Noise source (or a seed).
    poisson : bool
        Draw Poisson counts; otherwise return the expected counts.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` counts (float64).
    """
    e = np.asarray(energies, dtype=float)
    els = [physics.normalize_element(el) for el in amplitudes]
    amps = np.array([float(amplitudes[k]) for k in amplitudes])
    if amps.size and not (np.all(np.isfinite(amps)) and np.all(amps >= 0)):
        raise ParameterError(f"amplitudes must be finite counts >= 0, got {dict(amplitudes)!r}")
    if scatter is None:
        total = amps.sum() / 0.7
        sc = {n: _SCATTER_SHARES[n] * total for n in _SCATTER_NAMES}
    elif isinstance(scatter, Mapping):
        unknown = set(scatter) - set(_SCATTER_NAMES)
        if unknown:
            raise ParameterError(
                f"scatter keys must be among {', '.join(_SCATTER_NAMES)}; got {sorted(unknown)}"
            )
        sc = {n: float(scatter.get(n, 0.0)) for n in _SCATTER_NAMES}
    else:
        total = _check_float("scatter", scatter, 0.0, 1e15)
        norm = sum(_SCATTER_SHARES.values())
        sc = {n: _SCATTER_SHARES[n] / norm * total for n in _SCATTER_NAMES}
    pile = _pileup_coefficient(pileup)
    model = _Model(
        e,
        els,
        anode=physics.normalize_element(anode),
        tube_kv=tube_kv,
        theta_deg=theta_deg,
        fwhm_at_6keV=fwhm_at_6keV,
        pileup=pile,
        pileup_elements=[els[i] for i in np.argsort(-amps)[:_MAX_PILEUP_ELEMENTS]]
        if pile > 0
        else [],
    )
    base = np.concatenate([amps, [sc[n] for n in _SCATTER_NAMES]])[None, :]
    ref = max(float(base.sum()), 1e-12)
    lam = model.expected(base, ref)[0]
    if not poisson:
        return lam
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.poisson(lam).astype(float)
