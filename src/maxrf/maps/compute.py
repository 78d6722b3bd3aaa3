"""compute_maps: peak and element maps in one pass; get_peakmaps, element_maps, sum_image."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maxrf import engine, physics
from maxrf.engine import PixelMaps
from maxrf.errors import ParameterError
from maxrf.maps.fit import ElementFit, FitModel
from maxrf.maps.layers import _peak_attrs, _peak_small_arrays, _prominence_value
from maxrf.maps.model import _estimate_theta, _fit_range, _Templates, estimate_fwhm, fit_model
from maxrf.maps.results import ElementMaps, MapsResult, PeakMaps
from maxrf.maps.slices import PeakSliceMaps, get_slices, peak_labels, seed_peak_map
from maxrf.maps.sources import _Input, _open_input, _run
from maxrf.maps.windows import SumImage, window_lines


def _instrument(inp: _Input, anode: str | None, tube_kv: float | None, theta_deg: float | None
                ) -> tuple[str, float, float | None]:
    cal = inp.datastack.calibration if inp.datastack is not None else None
    cal = cal or {}
    anode = anode or cal.get("anode") or "Rh"
    tube_kv = tube_kv if tube_kv is not None else (cal.get("tube_kv") or 40.0)
    if theta_deg is None and cal.get("theta_deg") is not None:
        theta_deg = float(cal["theta_deg"])
    return str(anode), float(tube_kv), theta_deg


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
    peaks : bool
        Compute the peak-slice maps of the max spectrum (:func:`get_peakmaps`).
    elements : sequence of str, optional
        Elements to map (:func:`element_maps`); None for none.
    method : {'fit', 'window'}
        Element-map method.
    x_keVs : array_like, optional
        ``(C,)`` channel energies (keV); default the store's calibration.
    y_max : array_like, optional
        ``(C,)`` spectrum to slice; default the max spectrum.
    prominence : float, optional
        Minimum prominence (counts) of the sliced max-spectrum peaks. Default: data-scaled,
        :data:`AUTO_SIGMA` standard deviations of the local counting noise (as the hotmax
        atlas), which keeps the real peaks and none of the noise wiggles of raw counts;
        :func:`get_peakmaps` keeps the seed's 0.5.
    rel_height : float
        Peak width height for the slices (:func:`get_slices`).
    norm : bool
        Divide each peak map by its maximum (the seed's default in :func:`get_peakmaps`).
    fwhm_at_6keV : float, optional
        Detector FWHM at 5.9 keV (keV); estimated from the mean spectrum by default.
    anode, tube_kv, theta_deg : optional
        Instrument; default from the calibration layer, else Rh, 40 kV, theta estimated.
    energy_range : (float, float), optional
        Fitted energies (keV); default see :func:`fit_model` (windows: 1 keV .. tube_kv).
    continuum_order : int
        Legendre order of the continuum correction.
    nonneg : bool
        Non-negative element/scatter amplitudes (active-set NNLS); else unconstrained.
    client : dask.distributed.Client, optional
        Run on this cluster (default local threads or ``MAXRF_SCHEDULER``).
    progress : bool
        Progress bar on standard error.
    store : bool
        Write the ``peak_maps`` / ``element_maps`` layers (DataStack input only). The maps
        are then streamed into the store band by band as the pass produces them (both
        layers committed together at the end, atomically), so memory stays bounded
        whatever the number of maps and pixels; the result's ``maps``, ``keV_maps`` and
        ``chi2`` are :class:`maxrf.store.LayerArray` views of the stored layers, read on
        demand (``maps[i]`` reads one map, ``numpy.asarray(maps)`` all of them).

    Returns
    -------
    MapsResult
    """
    if method not in ("fit", "window"):
        raise ParameterError(f"method must be 'fit' or 'window', got {method!r}")
    els = _check_elements(elements) if elements is not None else []
    if not peaks and not els:
        raise ParameterError("nothing to compute: ask for peaks and/or elements")
    inp = _open_input(ds, need_energies=x_keVs is None)
    e = inp.require_energies(x_keVs)
    reductions: dict[str, PixelMaps] = {}
    peak_info = None
    if peaks:
        y = inp.get_max(y_max)
        peaks_xy, slices = get_slices(e, y, prominence=prominence, rel_height=rel_height)
        peak_info = (peaks_xy, slices)
        reductions["peaks"] = PeakSliceMaps(slices, e)
    elem_info: dict[str, Any] = {}
    if els:
        anode_, kv, theta = _instrument(inp, anode, tube_kv, theta_deg)
        mean = inp.get_mean()
        if method == "fit":
            model = fit_model(e, els, mean, fwhm_at_6keV=fwhm_at_6keV, anode=anode_, tube_kv=kv,
                              theta_deg=theta, energy_range=energy_range,
                              continuum_order=continuum_order)
            reductions["elements"] = ElementFit(model, nonneg=nonneg)
            elem_info = {"model": model}
        else:
            lo, hi = _fit_range(e, energy_range, kv)
            fwhm6 = fwhm_at_6keV
            if fwhm6 is None:
                fwhm6 = estimate_fwhm(e, mean, None, anode=anode_, tube_kv=kv,
                                      theta_deg=90.0 if theta is None else theta)
            if theta is None:
                tc = _Templates(e, lo, hi, physics.normalize_element(anode_), kv, 3)
                theta = _estimate_theta(tc, mean, els, fwhm6)
            wins = window_lines(els, e, fwhm_at_6keV=fwhm6, anode=anode_, tube_kv=kv,
                                theta_deg=theta, energy_range=energy_range)
            wslices = np.array([[w["channels"][0], w["channels"][0], w["channels"][1]] for w in wins])
            response = []
            for w, el in zip(wins, els):
                t = physics.element_spectrum(el, e, tube_kv=kv, fwhm_at_6keV=fwhm6)
                si, sk = w["channels"]
                response.append(float(seed_peak_map(t[si : sk + 1]) * (sk - si)))
            reductions["windows"] = PeakSliceMaps(wslices, e, kev_maps=False)
            elem_info = {"windows": wins, "response": np.array(response), "fwhm6": fwhm6,
                         "theta": theta, "anode": anode_, "tube_kv": kv, "range": (e[lo], e[hi - 1])}
    if store and inp.datastack is None:
        raise ParameterError("store=True needs a DataStack, not a bare cube")
    t0 = time.perf_counter()
    if store:
        result = _compute_stored(inp, reductions, e, peak_info, elem_info, els, method,
                                 norm=norm, prominence=prominence, rel_height=rel_height,
                                 client=client, progress=progress)
        result.seconds = time.perf_counter() - t0
        return result
    out = _run(inp, reductions, client, progress, "maps")
    result = MapsResult(seconds=time.perf_counter() - t0)
    h, w = inp.shape[:2]
    if peaks:
        peaks_xy, slices = peak_info
        k = slices.shape[0]
        arr = out["peaks"]
        maps = arr[:k]
        if norm:  # the engine's output is ours: no copy of k x H x W maps
            maps = _normalise(maps, copy=False)
        result.peaks = PeakMaps(maps, arr[k:], slices, peaks_xy, peak_labels(peaks_xy[:, 0]),
                                bool(norm), _prominence_value(prominence), float(rel_height))
    if els and method == "fit":
        arr = out["elements"]
        k = len(els)
        result.elements = _fit_result(elem_info["model"], e, els, arr[:k], arr[k],
                                      float(arr[k + 1].mean()))
    elif els:
        arr = out["windows"]
        arr *= _window_scale(elem_info)[:, None, None]
        result.elements = _window_result(elem_info, els, arr,
                                         np.full((h, w), np.nan, dtype=np.float32))
    return result


def _fit_result(model: FitModel, e: np.ndarray, els: list[str], maps: Any, chi2: Any,
                refined_fraction: float) -> ElementMaps:
    return ElementMaps(
        maps=maps, chi2=chi2, elements=els, method="fit",
        fwhm_at_6keV=model.fwhm_at_6keV, theta_deg=model.theta_deg, anode=model.anode,
        tube_kv=model.tube_kv, energy_range=[float(e[model.lo]), float(e[model.hi - 1])],
        components=list(model.names), refined_fraction=float(refined_fraction),
    )


def _window_scale(info: Mapping[str, Any]) -> np.ndarray:
    """Per element: window width over the template's response (float32): counts per pixel."""
    d = np.array([w["channels"][1] - w["channels"][0] for w in info["windows"]], float)
    return (d / info["response"]).astype(np.float32)


def _window_result(info: Mapping[str, Any], els: list[str], maps: Any, chi2: Any) -> ElementMaps:
    return ElementMaps(
        maps=maps, chi2=chi2, elements=els, method="window", windows=info["windows"],
        fwhm_at_6keV=float(info["fwhm6"]), theta_deg=float(info["theta"]), anode=info["anode"],
        tube_kv=float(info["tube_kv"]), energy_range=[float(v) for v in info["range"]],
    )


def _compute_stored(inp: _Input, reductions: Mapping[str, PixelMaps], e: np.ndarray,
                    peak_info: Any, elem_info: Mapping[str, Any], els: list[str], method: str,
                    *, norm: bool, prominence: float, rel_height: float, client: Any,
                    progress: bool) -> MapsResult:
    """The pass with its maps streamed into the new layers band by band (never k x H x W in
    memory), both layers committed together at the end; the result reads them back lazily."""
    from maxrf.store import LayerWriter

    ds = inp.datastack
    h, w = inp.shape[:2]
    whole = (slice(None),)
    outputs: dict[str, engine.BandedMaps] = {}
    with LayerWriter(ds.path) as lw:

        def banded(name: str, n_rows: int, flush: Any) -> tuple[int, tuple[int, int, int]]:
            rows = engine.band_rows((h, w), n_rows, ds.chunks[0])
            outputs[name] = engine.BandedMaps((h, w), rows, flush)
            return rows, (1, rows, w)

        if "peaks" in reductions:
            peaks_xy, slices = peak_info
            kp = slices.shape[0]
            rows_p, chunks = banded("peaks", 2 * kp, lambda r, b: flush_peaks(r, b))
            pmaps = lw.create("peak_maps", "maps", (kp, h, w), np.float32, chunks)
            pkev = lw.create("peak_maps", "keV_maps", (kp, h, w), np.float32, chunks)
            peak_max = np.full(kp, np.nan, dtype=np.float32)

            def flush_peaks(rows: slice, band: np.ndarray) -> None:
                lw.write(pmaps, (*whole, rows), band[:kp])
                lw.write(pkev, (*whole, rows), band[kp:])
                if kp:
                    peak_max[:] = np.fmax(peak_max, np.fmax.reduce(band[:kp].reshape(kp, -1), axis=1))

        if els:
            ke = len(els)
            fit = method == "fit"
            scale = None if fit else _window_scale(elem_info)
            name = "elements" if fit else "windows"
            _, chunks = banded(name, ke + 2, lambda r, b: flush_elements(r, b))
            emaps = lw.create("element_maps", "maps", (ke, h, w), np.float32, chunks)
            echi2 = lw.create("element_maps", "chi2", (h, w), np.float32, chunks[1:])
            refined = [0.0]

            def flush_elements(rows: slice, band: np.ndarray) -> None:
                if fit:
                    lw.write(emaps, (*whole, rows), band[:ke])
                    lw.write(echi2, (rows,), band[ke])
                    refined[0] += float(band[ke + 1].sum(dtype=np.float64))
                else:
                    lw.write(emaps, (*whole, rows), band * scale[:, None, None])
                    lw.write(echi2, (rows,), np.full(band.shape[1:], np.nan, np.float32))

        _run(inp, reductions, client, progress, "maps", outputs=outputs)
        attrs: dict[str, Any] = {}
        if "peaks" in reductions:
            if norm:  # a second pass over the stored maps (not the cube), band by band
                for r0 in range(0, h, rows_p):
                    rows = slice(r0, min(r0 + rows_p, h))
                    band = pmaps[:, rows, :]
                    for i in range(kp):
                        if peak_max[i] > 0:
                            band[i] /= peak_max[i]
                    lw.write(pmaps, (*whole, rows), band)
            meta = PeakMaps(None, None, slices, peaks_xy, peak_labels(peaks_xy[:, 0]),
                            bool(norm), _prominence_value(prominence), float(rel_height))
            for key, value in _peak_small_arrays(meta).items():
                lw.put("peak_maps", key, value)
            attrs["peak_maps"] = _peak_attrs(meta)
        if els:
            fraction = refined[0] / (h * w) if h * w else 0.0
            if method == "fit":
                em = _fit_result(elem_info["model"], e, els, None, None, fraction)
            else:
                em = _window_result(elem_info, els, None, None)
            attrs["element_maps"] = em.attrs()
        lw.commit(attrs)
    result = MapsResult()
    if "peaks" in reductions:
        layer = ds.read("peak_maps", lazy=True)
        meta.maps, meta.keV_maps = layer["maps"], layer["keV_maps"]
        result.peaks = meta
    if els:
        layer = ds.read("element_maps", lazy=True)
        em.maps, em.chi2 = layer["maps"], layer["chi2"]
        result.elements = em
    return result


def _normalise(maps: np.ndarray, copy: bool = True) -> np.ndarray:
    """Divide each map by its maximum (seed's ``norm``); in place when ``copy`` is False."""
    out = maps.astype(np.float32, copy=copy)
    for i in range(out.shape[0]):
        mx = np.nanmax(out[i]) if out[i].size else 0.0
        if mx > 0:
            out[i] /= mx
    return out


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
