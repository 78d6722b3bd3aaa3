"""What each family of maps adds to the one pass: its reduction, how a band of the
reduction's rows becomes layer arrays, and its result object.

Element-map methods come from one table, :data:`ELEMENT_METHODS`, with one call shape
(``method(energies, elements, mean_spectrum, instrument, options) -> ElementPlan``), as
pybaselines' ``Baseline`` methods; :func:`maxrf.maps.compute_maps` looks the method up
there, so a new method is one entry.

A plan never knows whether its maps go to memory or to the store: the pass hands it bands
of rows (the whole image at once in memory, row bands when streamed to a layer) and it
returns the arrays to keep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.engine import PixelMaps
from maxrf.maps.fit import ElementFit, FitModel
from maxrf.maps.layers import _peak_attrs, _peak_small_arrays, _prominence_value
from maxrf.maps.model import _fit_range, _initial_theta, _Templates, estimate_fwhm, fit_model
from maxrf.maps.results import ElementMaps, PeakMaps
from maxrf.maps.slices import AUTO_SIGMA, PeakSliceMaps, get_slices, peak_labels, seed_peak_map
from maxrf.maps.windows import window_lines

__all__ = ["ELEMENT_METHODS", "ElementPlan", "Instrument", "MapOptions", "PeakPlan"]


@dataclass(frozen=True)
class Instrument:
    """Tube and geometry the element maps are modelled with (``theta_deg`` None: estimate)."""

    anode: str
    tube_kv: float
    theta_deg: float | None


@dataclass(frozen=True)
class MapOptions:
    """The user's element-map options (see :func:`maxrf.maps.compute_maps`)."""

    fwhm_at_6keV: float | None = None
    energy_range: Sequence[float] | None = None
    continuum_order: int = 3
    nonneg: bool = True
    #: pixels averaged in the mean spectrum (counting statistics of the estimates)
    n_spectra: int = 1


class PeakPlan:
    """Peak-slice maps and keV maps of the max spectrum: layer ``peak_maps``."""

    key = "peaks"
    layer = "peak_maps"

    def __init__(self, energies: np.ndarray, y_max: np.ndarray, prominence: float | None,
                 rel_height: float, norm: bool):
        shared = None
        if prominence is None:  # the default: hotmax's peak list (near-duplicates merged)
            from maxrf.peaklist import max_spectrum_peaks

            shared, _ = max_spectrum_peaks(y_max, n_sigma=AUTO_SIGMA)
        peaks_xy, slices = get_slices(energies, y_max, prominence=prominence,
                                      rel_height=rel_height, peaks=shared)
        self.k = int(slices.shape[0])
        self.reduction: PixelMaps = PeakSliceMaps(slices, energies)
        self.rows = 2 * self.k
        self.meta = PeakMaps(None, None, slices, peaks_xy, peak_labels(peaks_xy[:, 0]),
                             bool(norm), _prominence_value(prominence), float(rel_height))
        self.peak_max = np.full(self.k, np.nan, dtype=np.float32)

    def layout(self) -> dict[str, int | None]:
        """Arrays of the layer: name -> number of maps (None: one ``(H, W)`` image)."""
        return {"maps": self.k, "keV_maps": self.k}

    def arrays(self, band: np.ndarray) -> dict[str, np.ndarray]:
        """Split a band ``(2k, rows, W)`` of the reduction; track each map's maximum."""
        k = self.k
        if k:
            top = np.fmax.reduce(band[:k].reshape(k, -1), axis=1)
            self.peak_max[:] = np.fmax(self.peak_max, top)
        return {"maps": band[:k], "keV_maps": band[k:]}

    @property
    def rescaled(self) -> tuple[str, ...]:
        """Arrays to rescale after the pass: with ``norm``, the peak maps."""
        return ("maps",) if self.meta.norm else ()

    def rescale(self, band: np.ndarray) -> np.ndarray:
        """Each peak map divided by its maximum (maps whose maximum is not positive are
        left as they are), in place."""
        for i in range(self.k):
            if self.peak_max[i] > 0:
                band[i] /= self.peak_max[i]
        return band

    def small_arrays(self) -> dict[str, np.ndarray]:
        return _peak_small_arrays(self.meta)

    def attrs(self, n_pixels: int) -> dict[str, Any]:
        return _peak_attrs(self.meta)

    def result(self, arrays: Mapping[str, Any]) -> PeakMaps:
        self.meta.maps, self.meta.keV_maps = arrays["maps"], arrays["keV_maps"]
        return self.meta


class ElementPlan:
    """Element maps by one method: layer ``element_maps`` (maps and chi-square).

    Parameters
    ----------
    reduction : PixelMaps
        The per-block computation; its rows are the ``k`` maps, then (``fit``) the
        reduced chi-square and the refinement flag.
    template : ElementMaps
        The result's metadata (maps filled in after the pass).
    scale : numpy.ndarray, optional
        ``(k,)`` factor turning each row into counts per pixel (``window``); None when the
        rows already are (``fit``, which also yields chi-square and refinement rows).
    """

    key = "elements"
    layer = "element_maps"

    def __init__(self, reduction: PixelMaps, template: ElementMaps,
                 scale: np.ndarray | None = None):
        self.reduction = reduction
        self.meta = template
        self.k = len(template.elements)
        self.scale = scale
        self.rows = self.k + 2  # band memory is sized for the fit's rows
        self.refined = 0.0
        self.kept: Any = None  # earlier runs' maps of other elements (maxrf.runs.KeptMaps)
        self.run = ""

    def keep(self, kept: Any, run: str) -> None:
        """Store this run's maps followed by ``kept`` (a new Fe map replaces only Fe)."""
        self.kept, self.run = kept, run

    def layout(self) -> dict[str, int | None]:
        return {"maps": self.k + (len(self.kept.maps) if self.kept is not None else 0),
                "chi2": None}

    def prefill(self, sink: Any) -> None:
        """Write the kept maps after this run's (stored layers only)."""
        for j, img in enumerate(self.kept.maps if self.kept is not None else ()):
            sink.write(self.layer, "maps", slice(None), img[None], first=self.k + j)

    def arrays(self, band: np.ndarray) -> dict[str, np.ndarray]:
        k = self.k
        if self.scale is not None:
            band *= self.scale[:, None, None]  # the band is ours (dropped after the flush)
            return {"maps": band, "chi2": np.full(band.shape[1:], np.nan, np.float32)}
        self.refined += float(band[k + 1].sum(dtype=np.float64))
        return {"maps": band[:k], "chi2": band[k]}

    rescaled: tuple[str, ...] = ()

    def rescale(self, band: np.ndarray) -> np.ndarray:
        return band

    def small_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def attrs(self, n_pixels: int) -> dict[str, Any]:
        if self.scale is None:
            self.meta.refined_fraction = self.refined / n_pixels if n_pixels else 0.0
        attrs = self.meta.attrs()
        if self.kept is not None:
            from maxrf import runs

            attrs = runs.merged_attrs(attrs, self.kept, self.run)
        return attrs

    def result(self, arrays: Mapping[str, Any]) -> ElementMaps:
        self.meta.maps, self.meta.chi2 = arrays["maps"], arrays["chi2"]
        if self.kept is not None and self.kept.maps:  # this run's maps only; the kept follow
            from maxrf import runs

            self.meta.maps = runs.HeadMaps(arrays["maps"], self.k)
        return self.meta


def fit_method(e: np.ndarray, els: list[str], mean: np.ndarray, inst: Instrument,
               opts: MapOptions) -> ElementPlan:
    """``method='fit'``: per-pixel weighted template fit (module notes of maxrf.maps)."""
    model = fit_model(e, els, mean, fwhm_at_6keV=opts.fwhm_at_6keV, anode=inst.anode,
                      tube_kv=inst.tube_kv, theta_deg=inst.theta_deg,
                      energy_range=opts.energy_range, continuum_order=opts.continuum_order,
                      n_spectra=opts.n_spectra)
    return ElementPlan(ElementFit(model, nonneg=opts.nonneg), _fit_meta(model, e, els))


def _fit_meta(model: FitModel, e: np.ndarray, els: list[str]) -> ElementMaps:
    return ElementMaps(
        maps=None, chi2=None, elements=els, method="fit",
        fwhm_at_6keV=model.fwhm_at_6keV, theta_deg=model.theta_deg, anode=model.anode,
        tube_kv=model.tube_kv, energy_range=[float(e[model.lo]), float(e[model.hi - 1])],
        components=list(model.names),
    )


def window_method(e: np.ndarray, els: list[str], mean: np.ndarray, inst: Instrument,
                  opts: MapOptions) -> ElementPlan:
    """``method='window'``: each element's freest line window, the seed's baseline rule,
    divided by the response of that rule to the element's own template."""
    lo, hi = _fit_range(e, opts.energy_range, inst.tube_kv)
    fwhm6, theta = opts.fwhm_at_6keV, inst.theta_deg
    if fwhm6 is None:
        fwhm6 = estimate_fwhm(e, mean, None, anode=inst.anode, tube_kv=inst.tube_kv,
                              n_spectra=opts.n_spectra)
    if theta is None:
        tc = _Templates(e, lo, hi, physics.normalize_element(inst.anode), inst.tube_kv, 3)
        theta = _initial_theta(tc, mean, els, fwhm6, opts.n_spectra)
    wins = window_lines(els, e, fwhm_at_6keV=fwhm6, anode=inst.anode, tube_kv=inst.tube_kv,
                        theta_deg=theta, energy_range=opts.energy_range)
    slices = np.array([[w["channels"][0], w["channels"][0], w["channels"][1]] for w in wins])
    scale = []
    for w, el in zip(wins, els):
        t = physics.element_spectrum(el, e, tube_kv=inst.tube_kv, fwhm_at_6keV=fwhm6)
        si, sk = w["channels"]
        response = float(seed_peak_map(t[si : sk + 1]) * (sk - si))
        scale.append((sk - si) / response)  # window width over the template's response
    meta = ElementMaps(
        maps=None, chi2=None, elements=els, method="window", windows=wins,
        fwhm_at_6keV=float(fwhm6), theta_deg=float(theta), anode=inst.anode,
        tube_kv=float(inst.tube_kv), energy_range=[float(e[lo]), float(e[hi - 1])],
    )
    return ElementPlan(PeakSliceMaps(slices, e, kev_maps=False), meta,
                       np.array(scale, dtype=np.float32))


#: element-map methods: name -> builder with one call shape
ELEMENT_METHODS: dict[str, Callable[[np.ndarray, list[str], np.ndarray, Instrument, MapOptions],
                                    ElementPlan]] = {
    "fit": fit_method,
    "window": window_method,
}
