"""Result objects of the decomposition: components, abundance maps, material classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Clustering:
    """Material classes of pixels, from their component abundances.

    Attributes
    ----------
    labels : numpy.ndarray or LayerArray
        ``(H, W)`` class of every pixel (0 .. n_classes - 1).
    spectra : numpy.ndarray
        ``(n_classes, C)`` mean spectrum of each class (counts per pixel).
    pixels : numpy.ndarray
        ``(n_classes,)`` pixels in each class.
    centres : numpy.ndarray
        ``(n_classes, k)`` mean abundances (counts) of the components in each class.
    embedding : numpy.ndarray
        ``(n, 2)`` principal-component coordinates of the sampled pixels (a scatter plot
        in which a selection maps back to the image through ``sample_pixels``).
    sample_pixels : numpy.ndarray
        ``(n, 2)`` ``[row, col]`` of the sampled pixels (``-1`` for hotmax spectra).
    sample_labels : numpy.ndarray
        ``(n,)`` class of each sampled pixel.
    method : str
        ``'gmm'`` (Gaussian mixture, number of classes by BIC) or ``'kmeans'``.
    bic : dict of int to float
        BIC of each number of classes tried (``'gmm'`` with the number chosen).
    """

    labels: Any
    spectra: np.ndarray
    pixels: np.ndarray
    centres: np.ndarray
    embedding: np.ndarray
    sample_pixels: np.ndarray
    sample_labels: np.ndarray
    method: str
    bic: dict[int, float] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(self.spectra.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain summary (JSON-ready; the maps stay out)."""
        return {"n_classes": self.n_classes, "method": self.method,
                "pixels": [int(p) for p in self.pixels],
                "centres": np.round(self.centres, 3).tolist(),
                "bic": {str(k): float(v) for k, v in self.bic.items()}}


@dataclass
class Decomposition:
    """Non-negative components of a scan and their abundance maps.

    Attributes
    ----------
    components : numpy.ndarray
        ``(k, C)`` component spectra, each of unit area over the fitted energy range.
    maps : numpy.ndarray or LayerArray
        ``(k, H, W)`` abundances: counts of each component in each pixel.
    elements : list of list of str
        Elements whose lines explain each component (strongest first).
    explained : numpy.ndarray
        ``(k,)`` share of each component's counts explained by element lines + scatter.
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV).
    edges : numpy.ndarray
        Channel edges of the energy bins the components were fitted on.
    chi2 : numpy.ndarray or LayerArray
        ``(H, W)`` reduced chi-square of each pixel's reconstruction (binned counts).
    rank : dict
        How the number of components was chosen (``'given'`` or ``'noise'``), the scaled
        singular values and the noise edge.
    quality : str
        ``'good'`` or ``'doubtful'``.
    checks : list of dict
        ``{'name', 'passed', 'detail'}`` behind the verdict.
    clustering : Clustering or None
        Material classes computed in the same pass.
    """

    components: np.ndarray
    maps: Any
    elements: list[list[str]]
    explained: np.ndarray
    energies: np.ndarray
    edges: np.ndarray
    chi2: Any
    rank: dict[str, Any]
    quality: str
    checks: list[dict[str, Any]]
    method: str = "nmf"
    clustering: Clustering | None = None

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain summary (JSON-ready; the maps stay out)."""
        out = {
            "method": self.method,
            "n_components": self.n_components,
            "components": [{"index": i, "elements": els, "explained": round(float(x), 3)}
                           for i, (els, x) in enumerate(zip(self.elements, self.explained))],
            "rank": {k: (np.round(v, 3).tolist() if isinstance(v, np.ndarray) else v)
                     for k, v in self.rank.items()},
            "quality": self.quality,
            "checks": self.checks,
        }
        if self.clustering is not None:
            out["classes"] = self.clustering.to_dict()
        return out


