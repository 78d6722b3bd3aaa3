"""The model of a synthetic scan: component templates, amplitudes, expected counts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.errors import ParameterError

#: plausible elements of a drawing / painting; make_scan picks Ca, Fe and a random subset
DEFAULT_ELEMENTS: tuple[str, ...] = ("Ca", "Fe", "Cu", "Zn", "Pb", "K", "Ti", "Mn")
#: default pile-up coefficient (``pileup=True``)
DEFAULT_PILEUP: float = 0.004
#: default scatter shares (of the element counts / 0.7) for synth_spectrum
_SCATTER_SHARES: dict[str, float] = {
    "compton": 0.10,
    "rayleigh": 0.04,
    "continuum": 0.15,
    "zero": 0.01,
}
_SCATTER_NAMES: tuple[str, ...] = ("rayleigh", "compton", "continuum", "zero")
_MAX_PILEUP_ELEMENTS = 6
_TRUTH_VERSION = 1


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ParameterError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


def _pileup_coefficient(pileup: bool | float) -> float:
    if pileup is True:
        return DEFAULT_PILEUP
    if pileup is False or pileup is None:
        return 0.0
    return _check_float("pileup", pileup, 0.0, 1.0)


def _main_line(element: str, tube_kv: float) -> tuple[float, float]:
    """(energy keV, share of the element's total area) of its strongest line."""
    lines = physics.element_lines(element, tube_kv)
    rel = np.array([ln.rel_intensity for ln in lines])
    k = int(np.argmax(rel))
    return lines[k].energy_keV, float(rel[k] / rel.sum())


class _Model:
    """Templates and amplitude maps of a scan (shared by make_scan and expected_spectra)."""

    def __init__(
        self,
        energies: np.ndarray,
        elements: Sequence[str],
        *,
        anode: str,
        tube_kv: float,
        theta_deg: float,
        fwhm_at_6keV: float,
        pileup: float,
        pileup_elements: Sequence[str],
    ) -> None:
        self.energies = energies
        self.elements = list(elements)
        rows = [
            physics.element_spectrum(el, energies, tube_kv=tube_kv, fwhm_at_6keV=fwhm_at_6keV)
            for el in self.elements
        ]
        sc = physics.scatter_spectrum(
            energies, anode=anode, tube_kv=tube_kv, theta_deg=theta_deg, fwhm_at_6keV=fwhm_at_6keV
        )
        sc["zero"] = physics.zero_peak(energies, physics.noise_fwhm_keV(fwhm_at_6keV))
        rows += [sc[name] for name in _SCATTER_NAMES]
        self.pileup = float(pileup)
        self.pileup_elements = [
            el
            for el in (pileup_elements if pileup > 0 else [])
            if physics.element_lines(el, tube_kv)
        ]
        idx = [self.elements.index(el) for el in self.pileup_elements]
        main = [_main_line(el, tube_kv) for el in self.pileup_elements]
        pairs_i, pairs_j, centres, mult = [], [], [], []
        for a in range(len(idx)):
            for b in range(a, len(idx)):
                pairs_i.append(idx[a])
                pairs_j.append(idx[b])
                centres.append(main[a][0] + main[b][0])
                mult.append((1.0 if a == b else 2.0) * main[a][1] * main[b][1])
        self.pair_i = np.array(pairs_i, dtype=int)
        self.pair_j = np.array(pairs_j, dtype=int)
        self.pair_mult = np.array(mult)
        if centres:
            c = np.array(centres)
            rows += list(
                physics.gaussian_peaks(
                    energies, c, np.eye(c.size), physics.fwhm_keV(c, fwhm_at_6keV)
                )
            )
        self.templates = np.array(rows, dtype=float).reshape(len(rows), energies.size)
        self.n_base = len(self.elements) + len(_SCATTER_NAMES)

    def amplitudes(self, base: np.ndarray, counts_ref: float | np.ndarray) -> np.ndarray:
        """``(n_pixels, n_components)`` from ``(n_pixels, K + 4)`` element+scatter areas."""
        if self.pair_i.size == 0:
            return base
        ref = np.asarray(counts_ref, dtype=float)
        if ref.ndim == 1:
            ref = ref[:, None]
        pile = base[:, self.pair_i] * base[:, self.pair_j] * (self.pileup * self.pair_mult) / ref
        return np.concatenate([base, pile], axis=1)

    def expected(self, base: np.ndarray, counts_ref: float | np.ndarray) -> np.ndarray:
        lam = self.amplitudes(base, counts_ref) @ self.templates
        np.maximum(lam, 0.0, out=lam)
        return lam


def _base_block(
    elements: Sequence[str],
    maps: Mapping[str, np.ndarray],
    scatter: Mapping[str, np.ndarray],
    rows: slice,
) -> np.ndarray:
    layers = [maps[el][rows] for el in elements] + [scatter[n][rows] for n in _SCATTER_NAMES]
    stack = np.stack(layers, axis=-1).astype(float)  # (r, W, K + 4)
    return stack.reshape(-1, stack.shape[-1])
