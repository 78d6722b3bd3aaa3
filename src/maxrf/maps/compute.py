"""compute_maps: peak and element maps in one pass; get_peakmaps, element_maps, sum_image.

One path for every case: the plans (:mod:`maxrf.maps.plans`) say what each family of maps
adds to the pass, the sink (:mod:`maxrf.maps.sinks`) where the maps go (memory, or the
store band by band); :func:`run_plans` drives both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf import engine, physics
from maxrf.errors import ParameterError
from maxrf.maps.plans import ELEMENT_METHODS, ElementPlan, Instrument, MapOptions, PeakPlan
from maxrf.maps.results import ElementMaps, MapsResult
from maxrf.maps.sinks import LayerSink, MemorySink
from maxrf.maps.sources import _Input, _open_input, _run
from maxrf.maps.sums import SumImage, WindowImages

if TYPE_CHECKING:
    from maxrf.runs import MergeReport

Plan = PeakPlan | ElementPlan


def _instrument(inp: _Input, anode: str | None, tube_kv: float | None,
                theta_deg: float | None) -> Instrument:
    cal = inp.datastack.calibration if inp.datastack is not None else None
    cal = cal or {}
    anode = anode or cal.get("anode") or "Rh"
    tube_kv = tube_kv if tube_kv is not None else (cal.get("tube_kv") or 40.0)
    if theta_deg is None and cal.get("theta_deg") is not None:
        theta_deg = float(cal["theta_deg"])
    return Instrument(str(anode), float(tube_kv), theta_deg)


def _check_elements(elements: Any) -> list[str]:
    if isinstance(elements, str):
        elements = [s for s in elements.replace(",", " ").split() if s]
    out = list(dict.fromkeys(physics.normalize_element(el) for el in elements))
    if not out:
        raise ParameterError("no elements given to map")
    return out


def compute_maps(
    ds: Any,
    peaks: bool = True,
    elements: Sequence[str] | None = None,
    method: str = "fit",
    *,
    x_keVs: Any = None,
    y_max: Any = None,
    prominence: float | None = None,
    rel_height: float = 0.2,
    norm: bool = False,
    fwhm_at_6keV: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    theta_deg: float | None = None,
    energy_range: Sequence[float] | None = None,
    continuum_order: int = 3,
    nonneg: bool = True,
    client: Any = None,
    progress: bool = False,
    store: bool = False,
) -> MapsResult:
    """Peak maps and element maps together, in ONE pass over the cube.

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan; a bare ``(H, W, C)`` cube needs ``x_keVs``.
    peaks, elements : bool, sequence of str or None
        Compute the peak-slice maps (:func:`get_peakmaps`); elements to map.
    method : str
        Element-map method: ``'fit'``, ``'window'`` (:data:`maxrf.maps.ELEMENT_METHODS`).
    x_keVs, y_max : array_like, optional
        ``(C,)`` channel energies (keV; default the calibration), spectrum to slice.
    prominence : float, optional
        Minimum prominence (counts) of the sliced peaks. Default: :data:`AUTO_SIGMA`
        standard deviations of the local counting noise (as the hotmax atlas), which keeps
        the real peaks and none of the noise wiggles of raw counts.
    rel_height, norm : float, bool
        Peak width height for the slices (:func:`get_slices`); divide each peak map by its
        maximum (the seed's default in :func:`get_peakmaps`).
    fwhm_at_6keV : float, optional
        Detector FWHM at 5.9 keV (keV); estimated from the mean spectrum by default.
    anode, tube_kv, theta_deg : optional
        Instrument; default from the calibration layer, else Rh, 40 kV, theta estimated.
    energy_range : (float, float), optional
        Fitted energies (keV); default see :func:`fit_model` (windows: 1 keV .. tube_kv).
    continuum_order, nonneg : int, bool
        Legendre order of the continuum correction; non-negative element/scatter
        amplitudes (active-set NNLS), else unconstrained.
    client, progress
        Cluster to run on (default local threads or ``MAXRF_SCHEDULER``); progress bar.
    store : bool
        Write the ``peak_maps`` / ``element_maps`` layers (DataStack input only), streamed
        band by band (memory stays bounded) and committed together; the result's arrays
        are then :class:`maxrf.store.LayerArray` views, read on demand.

    Returns
    -------
    MapsResult
    """
    els = _check_request(peaks, elements, method)
    inp = _open_input(ds, need_energies=x_keVs is None)
    if store and inp.datastack is None:
        raise ParameterError("store=True needs a DataStack, not a bare cube")
    e = inp.require_energies(x_keVs)
    plans: list[Plan] = [PeakPlan(e, inp.get_max(y_max), prominence, rel_height, norm)
                         ] if peaks else []
    if els:  # the method table: one call shape for every element-map method
        opts = MapOptions(fwhm_at_6keV, energy_range, continuum_order, nonneg,
                          inp.shape[0] * inp.shape[1])
        plans.append(ELEMENT_METHODS[method](e, els, inp.get_mean(),
                                             _instrument(inp, anode, tube_kv, theta_deg), opts))
    t0 = time.perf_counter()
    merge = _keep_other_elements(inp, plans[-1], els) if store and els else None
    res = run_plans(inp, plans, client=client, progress=progress, store=store)
    return MapsResult(res.get(PeakPlan.key), res.get(ElementPlan.key), time.perf_counter() - t0,
                      merge)


def _check_request(peaks: bool, elements: Sequence[str] | None, method: str) -> list[str]:
    """The elements asked for, once the method is known and something is asked."""
    if method not in ELEMENT_METHODS:
        raise ParameterError(f"method must be one of {sorted(ELEMENT_METHODS)}, got {method!r}")
    els = _check_elements(elements) if elements is not None else []
    if not peaks and not els:
        raise ParameterError("nothing to compute: ask for peaks and/or elements")
    return els


def _keep_other_elements(inp: _Input, plan: Plan, els: list[str]) -> MergeReport:
    """Element maps accumulate by element: a new Fe map replaces Fe only. The stored maps of
    the other elements are kept in the new layer; returns what the merge did."""
    from maxrf import runs

    run, kept = runs.now(), runs.keep_previous(inp.datastack, els)
    plan.keep(kept, run)
    return runs.report(els, kept, run)


def run_plans(inp: _Input, plans: Sequence[Plan], *, client: Any = None,
              progress: bool = False, store: bool = False) -> dict[str, Any]:
    """Run the plans' reductions in one pass; their results by plan key.

    With ``store`` the maps stream into new layers of the DataStack (committed together at
    the end, read back lazily); otherwise they stay in memory.
    """
    if not store:
        return _fill(inp, plans, MemorySink(inp.shape[:2]), client, progress)
    from maxrf.store import LayerWriter

    with LayerWriter(inp.datastack.path) as lw:
        return _fill(inp, plans, LayerSink(inp.datastack, lw), client, progress)


def _fill(inp: _Input, plans: Sequence[Plan], sink: MemorySink | LayerSink, client: Any,
          progress: bool) -> dict[str, Any]:
    h, w = inp.shape[:2]
    outputs: dict[str, engine.BandedMaps] = {}
    for plan in plans:
        rows = sink.band_rows(plan.rows)
        for name, n_maps in plan.layout().items():
            sink.create(plan.layer, name, n_maps, rows)
        if sink.banded and hasattr(plan, "prefill"):
            plan.prefill(sink)
        if sink.banded:
            outputs[plan.key] = engine.BandedMaps(
                (h, w), rows, lambda r, band, p=plan: _flush(sink, p, r, band))
    out = _run(inp, {p.key: p.reduction for p in plans}, client, progress, "maps",
               outputs=outputs or None)
    for plan in plans:
        if plan.key not in outputs:  # in memory: the whole image is one band
            _flush(sink, plan, slice(0, h), out[plan.key])
    attrs = {}
    for plan in plans:
        for name in plan.rescaled:  # a second pass over the maps (not the cube)
            for rows, band in sink.bands(plan.layer, name):
                sink.write(plan.layer, name, rows, plan.rescale(band))
        for key, value in plan.small_arrays().items():
            sink.put(plan.layer, key, value)
        attrs[plan.layer] = plan.attrs(h * w)
    layers = sink.finish(attrs)
    return {plan.key: plan.result(layers[plan.layer]) for plan in plans}


def _flush(sink: MemorySink | LayerSink, plan: Plan, rows: slice, band: np.ndarray) -> None:
    for name, value in plan.arrays(band).items():
        sink.write(plan.layer, name, rows, value)


def get_peakmaps(
    ds: Any,
    x_keVs: Any = None,
    y_max: Any = None,
    prominence: float = 0.5,
    rel_height: float = 0.2,
    norm: bool = True,
    *,
    client: Any = None,
    progress: bool = False,
    store: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the peak slices of the max spectrum into peak maps and keV maps (one pass).

    The seed's ``get_peakmaps(arr, x_calib, y_max)`` read the cube once per peak; this
    reads it once. Formula (kept exactly): for slice ``si .. sk`` (inclusive),
    ``d = sk - si``, ``peak_map = sum(slice) / d - (x[si] + x[sk]) / 2``.

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan (a bare ``(H, W, C)`` cube as in the seed needs ``x_keVs``).
    x_keVs : array_like, optional
        ``(C,)`` channel energies (keV); default ``ds.energies``.
    y_max : array_like, optional
        ``(C,)`` spectrum to slice; default ``ds.max_spectrum`` (for a bare cube its max
        over the pixels, one extra pass).
    prominence, rel_height : float
        See :func:`get_slices`.
    norm : bool
        Divide each peak map by its maximum (seed default; maps whose maximum is not
        positive are left as they are).
    client : dask.distributed.Client, optional
        Run on this cluster.
    progress : bool
        Progress bar.
    store : bool
        Also write the ``peak_maps`` layer (DataStack input only); the maps are then
        streamed to the store and returned as read-on-demand views of it (see
        :func:`compute_maps`).

    Returns
    -------
    peak_maps : numpy.ndarray
        ``(k, H, W)`` float32 (counts per channel, or relative with ``norm``).
    keV_maps : numpy.ndarray
        ``(k, H, W)`` float32 energy (keV) of the per-pixel slice maximum.
    """
    if y_max is None and hasattr(ds, "max_spectrum") and callable(ds.max_spectrum):
        y_max = ds.max_spectrum()  # as the seed's call: the smoothed max spectrum where stored
    res = compute_maps(ds, peaks=True, elements=None, x_keVs=x_keVs, y_max=y_max,
                       prominence=prominence, rel_height=rel_height, norm=norm, client=client,
                       progress=progress, store=store)
    peaks = res.peaks
    return peaks.maps, res.peaks.keV_maps


def element_maps(
    ds: Any,
    elements: Sequence[str],
    method: str = "fit",
    *,
    x_keVs: Any = None,
    fwhm_at_6keV: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    theta_deg: float | None = None,
    energy_range: Sequence[float] | None = None,
    continuum_order: int = 3,
    nonneg: bool = True,
    client: Any = None,
    progress: bool = False,
    store: bool = False,
) -> ElementMaps:
    """Element maps (counts per pixel of each element's lines) in one pass over the cube.

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan (a bare cube needs ``x_keVs``; its mean spectrum costs one extra pass).
    elements : sequence of str
        Elements to map (symbols, any case; or ``'Fe,Cu'``).
    method : {'fit', 'window'}
        Per-pixel template fit (default) or line-window integration (module notes).
    x_keVs, fwhm_at_6keV, anode, tube_kv, theta_deg, energy_range, continuum_order, nonneg,
    client, progress, store
        See :func:`compute_maps`.

    Returns
    -------
    ElementMaps
        ``.maps`` (k, H, W) float32 counts, ``.chi2`` (H, W), ``.elements``; ``em['Fe']``.
    """
    res = compute_maps(ds, peaks=False, elements=elements, method=method, x_keVs=x_keVs,
                       fwhm_at_6keV=fwhm_at_6keV, anode=anode, tube_kv=tube_kv,
                       theta_deg=theta_deg, energy_range=energy_range,
                       continuum_order=continuum_order, nonneg=nonneg, client=client,
                       progress=progress, store=store)
    return res.elements  # type: ignore[return-value]


def sum_image(
    ds: Any,
    min_keV: float = 1.0,
    *,
    x_keVs: Any = None,
    client: Any = None,
    progress: bool = False,
) -> np.ndarray:
    """Counts per pixel summed over the channels at or above ``min_keV`` (one pass).

    For registration with photographs (the seed's ``cube[:, :, 100:].sum(axis=2)``).

    Parameters
    ----------
    ds : DataStack, path, numpy or dask array
        The scan (a bare cube needs ``x_keVs``).
    min_keV : float
        Lowest energy summed (keV).
    x_keVs : array_like, optional
        Channel energies (keV) for a bare cube.
    client, progress
        See :func:`compute_maps`.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 counts.
    """
    inp = _open_input(ds, need_energies=x_keVs is None)
    e = inp.require_energies(x_keVs)
    lo = int(np.searchsorted(e, float(min_keV)))
    out = _run(inp, {"sum": SumImage(lo)}, client, progress, "sum image")
    return out["sum"][0]


def band_images(ds: Any, n: int = 16, min_keV: float | None = 1.0, *, client: Any = None,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Counts per pixel in ``n`` contiguous channel bands of equal mean counts (one pass).

    Separate images of what the sum image adds up: each element's lines fall in a few
    bands, so the bands span the element maps without knowing the elements or trusting the
    calibration beyond ``min_keV`` (for registration with photographs, whose colours are
    near-linear in each pigment, not in the sum). Their sum is the sum image over the
    same channels.

    Parameters
    ----------
    ds : DataStack or path
        The scan (its mean spectrum places the bands).
    n : int
        Number of bands (fewer when the counts sit in fewer channels).
    min_keV : float or None
        Lowest energy included (keV); None: every channel (an uncalibrated scan).

    Returns
    -------
    images : numpy.ndarray
        ``(k, H, W)`` float64 counts, ``k <= n``.
    windows : numpy.ndarray
        ``(k, 2)`` first and last channel (inclusive) of each band.
    """
    if int(n) < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    inp = _open_input(ds, need_energies=min_keV is not None)
    lo = 0 if min_keV is None else int(np.searchsorted(inp.require_energies(None), float(min_keV)))
    mean = np.clip(np.nan_to_num(np.asarray(inp.get_mean(), dtype=float)[lo:]), 0, None)
    if mean.sum() <= 0:
        raise ParameterError("the scan holds no counts above the lowest energy asked")
    share = np.cumsum(mean) / mean.sum()
    cuts = np.unique(np.searchsorted(share, np.arange(1, int(n)) / int(n)) + 1)
    cuts = cuts[(cuts > 0) & (cuts < mean.size)]
    edges = np.concatenate([[0], cuts, [mean.size]]) + lo
    windows = np.column_stack([edges[:-1], edges[1:] - 1])
    out = _run(inp, {"bands": WindowImages(windows)}, client, progress, "band images")
    return out["bands"], windows
