"""Result objects of the maps: PeakMaps, ElementMaps, MapsResult."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maxrf import physics


@dataclass
class PeakMaps:
    """Peak-slice maps of a scan.

    Attributes
    ----------
    maps : numpy.ndarray or maxrf.store.LayerArray
        ``(k, H, W)`` float32 peak maps (counts per channel above the slice baseline; divided
        by each map's maximum when ``norm``). A read-on-demand view of the stored layer
        when computed with ``store=True``.
    keV_maps : numpy.ndarray
        ``(k, H, W)`` float32 energy (keV) of the per-pixel maximum in each slice.
    slices : numpy.ndarray
        ``(k, 3)`` int ``[left, peak, right]`` channels.
    peaks_xy : numpy.ndarray
        ``(k, 2)`` peak energy (keV) and height of the spectrum the slices came from.
    labels : list of str
        ``peak-07-6.40keV``...
    norm : bool
    prominence : float or None
        The prominence given (counts), or None for the data-scaled default
        (:data:`AUTO_SIGMA` x the local counting noise) or a per-channel array.
    rel_height : float
    """

    maps: np.ndarray
    keV_maps: np.ndarray
    slices: np.ndarray
    peaks_xy: np.ndarray
    labels: list[str]
    norm: bool
    prominence: float | None
    rel_height: float

    @property
    def peaks_keV(self) -> np.ndarray:
        return self.peaks_xy[:, 0] if self.peaks_xy.size else np.zeros(0)

    def __iter__(self) -> Iterator[np.ndarray]:
        """``peak_maps, keV_maps = result`` as the seed returned them."""
        return iter((self.maps, self.keV_maps))


@dataclass
class ElementMaps:
    """Element maps of a scan.

    Attributes
    ----------
    maps : numpy.ndarray or maxrf.store.LayerArray
        ``(k, H, W)`` float32 counts per pixel of each element's lines (total area); a
        read-on-demand view of the stored layer when computed with ``store=True``.
    chi2 : numpy.ndarray
        ``(H, W)`` float32 reduced chi-square of the per-pixel fit (NaN for ``'window'``).
    elements : list of str
    method : str
        ``'fit'`` or ``'window'``.
    windows : list of dict
        For ``'window'``: :func:`window_lines` entries.
    fwhm_at_6keV, theta_deg : float
        Detector resolution (keV at 5.9 keV) and scattering angle (degrees) used.
    anode : str
    tube_kv : float
    energy_range : list of float
        Fitted energies (keV).
    components : list of str
        Fit components (``'fit'``).
    refined_fraction : float
        Share of the pixels whose amplitudes the non-negativity refinement changed.
    """

    maps: np.ndarray
    chi2: np.ndarray
    elements: list[str]
    method: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    fwhm_at_6keV: float = float("nan")
    theta_deg: float = float("nan")
    anode: str = "Rh"
    tube_kv: float = 40.0
    energy_range: list[float] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    refined_fraction: float = 0.0

    def __getitem__(self, element: str) -> np.ndarray:
        """The map of one element (``maps['Fe']``)."""
        try:
            return self.maps[self.elements.index(physics.normalize_element(element))]
        except ValueError:
            raise KeyError(element) from None

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{element: (H, W) map}``."""
        return {el: self.maps[i] for i, el in enumerate(self.elements)}

    def attrs(self) -> dict[str, Any]:
        """Layer attributes (JSON-safe)."""
        return {
            "elements": list(self.elements), "method": self.method, "windows": self.windows,
            "fwhm_at_6keV": float(self.fwhm_at_6keV), "theta_deg": float(self.theta_deg),
            "anode": self.anode, "tube_kv": float(self.tube_kv),
            "energy_range": [float(v) for v in self.energy_range],
            "components": list(self.components), "refined_fraction": float(self.refined_fraction),
            "units": "counts per pixel (total area of the element's lines)",
        }


@dataclass
class MapsResult:
    """What :func:`compute_maps` returns: either part may be None."""

    peaks: PeakMaps | None = None
    elements: ElementMaps | None = None
    seconds: float = 0.0
    merge: Any = None
    """With ``store=True`` and elements: the :class:`maxrf.runs.MergeReport`."""
