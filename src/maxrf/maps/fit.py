"""The per-pixel element fit: a fixed design, one matrix product per block, NNLS refinement."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maxrf.engine import Block, PixelMaps
from maxrf.errors import ParameterError
from maxrf.maps.sources import BATCH_VALUES
from maxrf.solve import nnls_gram


@dataclass
class FitModel:
    """The fixed design of the per-pixel element fit.

    Attributes
    ----------
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV) of the cube.
    lo, hi : int
        Fitted channels ``lo .. hi - 1``.
    names : list of str
        Component names: element symbols, then ``'rayleigh'``, ``'compton'``, ``'zero'``,
        ``'pileup'`` (when present), ``'continuum0'``...
    kinds : list of str
        ``'element'``, ``'scatter'``, ``'pileup'`` or ``'continuum'`` per component.
    templates : numpy.ndarray
        ``(m, hi - lo)`` counts per channel per unit amplitude.
    weights : numpy.ndarray
        ``(hi - lo,)`` channel weights ``1 / max(mean spectrum, 1)``.
    constrained : numpy.ndarray
        ``(m,)`` bool: amplitude must be >= 0.
    elements : list of str
        Mapped elements (the first ``len(elements)`` components).
    fwhm_at_6keV : float
        Detector FWHM at 5.9 keV (keV) used for the templates.
    theta_deg : float
        Scattering angle (degrees) of the Compton template.
    anode : str
    tube_kv : float
    """

    energies: np.ndarray
    lo: int
    hi: int
    names: list[str]
    kinds: list[str]
    templates: np.ndarray
    weights: np.ndarray
    constrained: np.ndarray
    elements: list[str]
    fwhm_at_6keV: float
    theta_deg: float
    anode: str
    tube_kv: float
    norms: np.ndarray = field(init=False, repr=False)
    gram: np.ndarray = field(init=False, repr=False)
    gram_inv: np.ndarray = field(init=False, repr=False)
    design: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sw = np.sqrt(self.weights)
        tw = self.templates * sw[None, :]
        norms = np.sqrt(np.sum(tw**2, axis=1))
        if np.any(norms <= 0):
            bad = [n for n, v in zip(self.names, norms) if v <= 0]
            raise ParameterError(f"fit components with no counts in the energy range: {bad}")
        self.norms = norms
        tn = tw / norms[:, None]
        self.gram = tn @ tn.T  # (m, m), unit diagonal
        self.gram_inv = np.linalg.pinv(self.gram, rcond=1e-10, hermitian=True)
        # normal equations of a row spectrum x: b = (sqrt(w) * x) @ design, a = b @ gram_inv
        self.design = np.ascontiguousarray(tn.T, dtype=np.float32)  # (C', m)

    @property
    def m(self) -> int:
        return len(self.names)

    @property
    def dof(self) -> int:
        return max(1, (self.hi - self.lo) - self.m)

    def fit(self, spectra: np.ndarray, nonneg: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Fit in-memory spectra.

        Parameters
        ----------
        spectra : array_like
            ``(n, C)`` or ``(C,)`` counts on the cube's full energy axis.
        nonneg : bool
            Impose non-negative constrained amplitudes.

        Returns
        -------
        amplitudes : numpy.ndarray
            ``(n, m)`` (or ``(m,)``) amplitudes (counts: total area of each component).
        chi2 : numpy.ndarray
            ``(n,)`` (or scalar) reduced chi-square.
        """
        x = np.asarray(spectra)
        one = x.ndim == 1
        x2 = x.reshape(-1, x.shape[-1])
        amps, chi2, _ = _fit_rows(x2, _FitArrays(self), nonneg)
        return (amps[0], chi2[0]) if one else (amps, chi2)


def _fit_rows(x: np.ndarray, f: _FitArrays, nonneg: bool, cache: dict | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(amplitudes (n, m), reduced chi2 (n,), refined (n,) bool) of rows of full spectra.

    One matrix product per batch of rows (the projection is fixed); the non-negativity
    refinement and the chi-square then work on ``(n, m)`` arrays only.
    """
    n = x.shape[0]
    width = f.hi - f.lo
    b = np.empty((n, f.design.shape[1]))
    q = np.empty(n)
    batch = max(1, BATCH_VALUES // max(1, width))
    buf = np.empty((min(batch, n), width), dtype=np.float32)
    for b0 in range(0, n, batch):
        xs = buf[: min(batch, n - b0)]
        np.copyto(xs, x[b0 : b0 + batch, f.lo : f.hi], casting="unsafe")
        xs *= f.sqrt_w  # sqrt(w) * x, float32 (a mixed-type multiply is 2x slower)
        b[b0 : b0 + batch] = xs @ f.design  # the normal equations' right-hand side
        q[b0 : b0 + batch] = np.einsum("ij,ij->i", xs, xs)  # sum(w x**2)
    gram = f.gram
    a = b @ f.gram_inv  # unconstrained (normalised) amplitudes, float64
    refined = np.zeros(n, dtype=bool)
    if nonneg:
        a, refined = nnls_gram(gram, b, a, f.constrained, cache=cache)
    ssr = q - 2 * np.einsum("ij,ij->i", a, b) + np.einsum("ij,ij->i", a @ gram, a)
    chi2 = np.maximum(ssr, 0.0) / f.dof
    return a / f.norms[None, :], chi2, refined


class _FitArrays:
    """The arrays of a FitModel that the blocks need (small, picklable)."""

    def __init__(self, model: FitModel):
        self.lo, self.hi = model.lo, model.hi
        self.sqrt_w = np.sqrt(model.weights).astype(np.float32)
        self.design = model.design
        self.gram = model.gram
        self.gram_inv = model.gram_inv
        self.norms = model.norms
        self.constrained = np.asarray(model.constrained, dtype=bool)
        self.dof = model.dof
        self.n_elements = len(model.elements)


class ElementFit(PixelMaps):
    """Per-pixel weighted linear fit of a :class:`FitModel`: ``(k + 2, r, c)``.

    Rows ``0..k-1``: element amplitudes (counts), ``k``: reduced chi-square, ``k + 1``:
    1 where the non-negativity refinement changed the pixel.
    """

    def __init__(self, model: FitModel, nonneg: bool = True):
        self.arrays = _FitArrays(model)
        self.nonneg = bool(nonneg)
        self._cache: dict = {}

    def __getstate__(self) -> dict:
        return {"arrays": self.arrays, "nonneg": self.nonneg, "_cache": {}}

    def pixel_maps(self, data: np.ndarray, where: Block) -> np.ndarray:
        r, c, n_ch = data.shape
        f = self.arrays
        k = f.n_elements
        out = np.empty((k + 2, r * c), dtype=np.float32)
        amps, chi2, refined = _fit_rows(data.reshape(r * c, n_ch), f, self.nonneg, self._cache)
        out[:k] = amps[:, :k].T
        out[k] = chi2
        out[k + 1] = refined
        return out.reshape(k + 2, r, c)
