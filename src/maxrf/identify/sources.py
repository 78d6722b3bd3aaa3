"""Identification of a scan or a spectrum from any source, and its DataStack layer.

Holds :func:`identify` (a DataStack, a hotmax atlas, a point spectrum or ``(counts,
energies)``), the per-source drivers (:func:`_identify_point`, :func:`_identify_atlas`,
:func:`_identify_datastack`), the energy axis of a calibration
(:func:`_calibration_energies`), the merge of per-spectrum results (:func:`_aggregate`)
and :func:`write_identification`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from maxrf import physics
from maxrf.errors import CalibrationError, MaxrfError, OutputLocationError, ParameterError
from maxrf.identify.constants import STATUSES
from maxrf.identify.context import estimate_fwhm6
from maxrf.identify.fitting import _Atom
from maxrf.identify.instrument import (
    estimate_theta,
    estimate_theta_from_lines,
    instrument_windows,
    match_instrument,
)
from maxrf.identify.patterns import element_pattern
from maxrf.identify.results import ElementResult, Identification, LineEvidence, SpectrumIdentification
from maxrf.identify.spectrum import identify_spectrum
from maxrf.types import ArrayLike

if TYPE_CHECKING:
    from maxrf.calibration import Calibration
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.io.spectra import Spectrum
    from maxrf.store import DataStack
    from maxrf.types import PathLike


class AtlasLike(Protocol):
    """A hotmax atlas or an object like one: ``hotmax_spectra`` ``(n, C)`` counts, and
    optionally ``x_keVs`` (keV), ``baselines``, ``envelopes``, ``ds`` / ``datastack``."""

    hotmax_spectra: ArrayLike


#: an energy calibration: a Calibration, a mapping with ``gain_keV`` and ``offset_keV``, a
#: ``(gain_keV, offset_keV)`` pair, or the ``(C,)`` channel energies (keV)
CalibrationLike: TypeAlias = "Calibration | Mapping[str, Any] | tuple[float, float] | ArrayLike"
#: what :func:`identify` reads
IdentifySource: TypeAlias = (
    "DataStack | HotmaxAtlas | AtlasLike | Spectrum | PathLike | tuple[ArrayLike, ArrayLike]"
)


def _calibration_energies(calibration: CalibrationLike, n: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Energies from a Calibration, a dict, a (gain, offset) pair or an energy array."""
    info: dict[str, Any] = {}
    if calibration is None:
        return None, info
    if callable(getattr(calibration, "energies", None)) and hasattr(calibration, "gain_keV"):
        info = {"theta_deg": getattr(calibration, "theta_deg", None),
                "quality": getattr(calibration, "quality", {}) or {}}
        return np.asarray(calibration.energies(n), dtype=float), info
    if isinstance(calibration, Mapping):
        try:
            gain, offset = float(calibration["gain_keV"]), float(calibration["offset_keV"])
        except (KeyError, TypeError, ValueError):
            raise ParameterError("calibration dict needs 'gain_keV' and 'offset_keV'") from None
        info = {"theta_deg": calibration.get("theta_deg"), "quality": calibration.get("quality") or {}}
        return offset + gain * np.arange(n, dtype=float), info
    arr = np.asarray(calibration, dtype=float)
    if arr.shape == (2,):
        return arr[1] + arr[0] * np.arange(n, dtype=float), info
    if arr.shape == (n,):
        return arr, info
    raise ParameterError(
        "calibration must be a Calibration, a dict with gain_keV/offset_keV, a (gain_keV, "
        f"offset_keV) pair or {n} channel energies; got {type(calibration).__name__}"
    )


def _aggregate(
    results: Sequence[SpectrumIdentification], anode: str, tube_kv: float, source: str
) -> Identification:
    rank = {s: i for i, s in enumerate(STATUSES)}
    by_el: dict[str, list[ElementResult]] = {}
    for res in results:
        for el, r in res.elements.items():
            by_el.setdefault(el, []).append(r)
    elements: list[ElementResult] = []
    for el, rs in by_el.items():
        best_status = min((r.status for r in rs), key=lambda s: rank[s])
        same = [r for r in rs if r.status == best_status]
        top = max(same, key=lambda r: r.confidence)
        lines: list[LineEvidence] = []
        for r in sorted(same, key=lambda r: -r.confidence):
            lines.extend(r.lines if best_status != "absent" else [])
        if best_status == "absent":
            lines = list(top.lines)
        elements.append(
            ElementResult(
                el, best_status, top.confidence, top.counts,
                max(r.relative for r in same), top.z, top.delta_chi2, top.line_fraction, lines,
                sorted({s for r in same for s in r.spectra}),
            )
        )
    elements.sort(key=lambda r: (rank[r.status], -r.confidence, r.element))
    inst: dict[str, dict[str, Any]] = {}
    for res in results:
        for p in res.instrument:
            d = inst.setdefault(
                p["name"], {"name": p["name"], "keV": p["keV"], "kind": p["kind"], "spectra": []}
            )
            d["spectra"].append(res.index)
    instrument = sorted(inst.values(), key=lambda d: d["keV"])
    # a peak left unexplained in one spectrum but matching a line of an element found (or
    # possible) in the scan, or an instrument peak, is explained after all
    fwhm6 = float(np.median([r.fwhm_at_6keV for r in results])) if results else physics.DEFAULT_FWHM_KEV
    known = [d["keV"] for d in instrument]
    for r in elements:
        if r.status != "absent":
            pat = element_pattern(r.element, tube_kv, min_rel=0.02, fwhm_at_6keV=fwhm6)
            known += [p.energy_keV for p in pat.peaks]
            known += [p.escape_keV for p in pat.peaks if p.escape_keV is not None]
    known_arr = np.sort(np.asarray(known, dtype=float))
    theta = float(np.median([r.theta_deg for r in results])) if results else 90.0
    windows = instrument_windows(anode, tube_kv, theta, fwhm6)
    unexplained: list[float] = []
    counts: list[float] = []
    found = sorted(
        (v, c) for res in results
        for v, c in zip(res.unexplained_keV, res.unexplained_counts or [np.nan] * len(res.unexplained_keV))
    )
    for v, c in found:
        tol = 0.5 * float(physics.fwhm_keV(v, fwhm6))
        if known_arr.size and np.min(np.abs(known_arr - v)) <= tol:
            continue
        if match_instrument(v, windows) is not None:
            continue
        if not unexplained or v - unexplained[-1] > tol:
            unexplained.append(v)
            counts.append(float(c))
        else:
            counts[-1] = float(np.nanmax([counts[-1], c]))
    return Identification(elements, instrument, unexplained, anode, tube_kv, list(results), source,
                          counts)


def _atlas_arrays(source: object) -> dict[str, Any] | None:
    """Spectra (+ baselines, envelopes, energies) of a hotmax atlas-like object."""
    spectra = getattr(source, "hotmax_spectra", None)
    if spectra is None:
        return None
    out: dict[str, Any] = {"spectra": np.asarray(spectra, dtype=float)}
    energies = getattr(source, "x_keVs", None)
    out["energies"] = None if energies is None else np.asarray(energies, dtype=float)
    for key, names in (("baselines", ("baselines", "hotmax_baselines")),
                       ("envelopes", ("envelopes", "noise_envelopes", "hotmax_envelopes"))):
        val = None
        for nm in names:
            val = getattr(source, nm, None)
            if val is not None and not callable(val):
                break
            val = None
        out[key] = None if val is None else np.asarray(val, dtype=float)
    return out


def _datastack_atlas(ds: DataStack, store: bool = True) -> dict[str, Any]:
    """Hotmax spectra, baselines and envelopes of a DataStack (:class:`maxrf.hotmax.HotmaxAtlas`
    reads its stored ``hotmax`` layer, or builds -- and with ``store`` stores -- it)."""
    from maxrf.hotmax import HotmaxAtlas

    arrays = _atlas_arrays(HotmaxAtlas(ds, store=store))
    if arrays is None:  # pragma: no cover - HotmaxAtlas always has hotmax_spectra
        raise ParameterError("the hotmax atlas has no spectra")
    arrays["energies"] = None
    return arrays


def identify(
    source: IdentifySource,
    *,
    anode: str | None = None,
    tube_kv: float | None = None,
    calibration: CalibrationLike | None = None,
    fwhm_at_6keV: float | None = None,
    theta_deg: float | None = None,
    store: bool = True,
    write: bool | None = None,
) -> Identification:
    """Identify the elements of a scan or a spectrum, with the evidence.

    Parameters
    ----------
    source : DataStack, HotmaxAtlas, Spectrum, str, path or (counts, energies)
        * a :class:`maxrf.store.DataStack` (or its path): every hotmax spectrum (``hotmax``
          layer, else :class:`maxrf.hotmax.HotmaxAtlas`) is identified; the result is
          stored as the ``identification`` layer when ``store``;
        * a hotmax atlas (``hotmax_spectra``, ``x_keVs``, optional baselines/envelopes);
        * a :class:`maxrf.io.spectra.Spectrum` (or a ``.msa`` / ``.spx`` path): calibrated
          from its counts alone with :func:`maxrf.calibration.auto_calibrate` -- never the
          file header -- unless ``calibration`` is given;
        * a pair ``(counts, energies)`` (keV).
    anode : str, optional
        Tube anode; default the source's (spectrum header, datastack calibration) or Rh.
    tube_kv : float, optional
        Tube voltage (kV); default the source's or 40.
    calibration : Calibration, dict, (gain_keV, offset_keV) or array, optional
        Energy calibration to use instead of the source's own / the automatic one.
    fwhm_at_6keV : float, optional
        Detector FWHM (keV) at 5.9 keV; measured from the peaks when None.
    theta_deg : float, optional
        Scattering angle (degrees); from the calibration or the Compton peak when None.
    store : bool
        Store the result in a DataStack source as layer ``identification``.
    write : bool, optional
        Deprecated spelling of ``store``.

    Returns
    -------
    Identification

    Raises
    ------
    ParameterError
        Unknown source type or invalid option.
    CalibrationError
        No energy calibration could be found.
    LayerMissingError
        A DataStack without an energy calibration.
    """
    from maxrf.compat import renamed_keyword
    from maxrf.io.spectra import Spectrum
    from maxrf.store import DataStack

    store = renamed_keyword("write", "store", write, store, "identify")
    source = _open_path(source)
    if isinstance(source, Spectrum):
        return _identify_point(
            source.counts, anode or source.anode or "Rh", tube_kv or source.tube_kv or 40.0,
            calibration, fwhm_at_6keV, theta_deg, str(source.path),
        )
    if isinstance(source, tuple) and len(source) == 2:
        counts, energies = source
        cal = calibration if calibration is not None else energies
        return _identify_point(
            counts, anode or "Rh", tube_kv or 40.0, cal, fwhm_at_6keV, theta_deg, "spectrum"
        )
    if isinstance(source, DataStack):
        return _identify_datastack(source, anode, tube_kv, calibration, fwhm_at_6keV, theta_deg, store)
    arrays = _atlas_arrays(source)
    if arrays is not None:
        return _identify_atlas_object(source, arrays, anode, tube_kv, calibration, fwhm_at_6keV,
                                      theta_deg)
    raise ParameterError(
        f"cannot identify a {type(source).__name__}: give a DataStack, a hotmax atlas, a "
        "Spectrum, a spectrum file or (counts, energies)"
    )


def _open_path(source: IdentifySource) -> IdentifySource:
    """A path opened: a spectrum file read, a datastack opened; anything else as it is."""
    if not isinstance(source, (str, Path)):
        return source
    from maxrf.io.spectra import SUPPORTED_SUFFIXES, read_spectrum

    p = Path(source)
    if p.suffix.lower() in SUPPORTED_SUFFIXES and not p.is_dir():
        return read_spectrum(p)
    from maxrf.store import open_datastack

    return open_datastack(p)


def _identify_atlas_object(
    source: AtlasLike, arrays: dict[str, Any], anode: str | None, tube_kv: float | None,
    calibration: CalibrationLike | None, fwhm6: float | None, theta: float | None,
) -> Identification:
    """Identify a hotmax atlas (or an object like one) on its own energy axis, the one of
    ``calibration``, or its datastack's."""
    ds = getattr(source, "ds", None) or getattr(source, "datastack", None)
    cal_info: dict[str, Any] = {}
    n = arrays["spectra"].shape[1]
    if calibration is not None:
        arrays["energies"], cal_info = _calibration_energies(calibration, n)
    if arrays["energies"] is None and ds is not None:
        arrays["energies"] = np.asarray(ds.energies, dtype=float)
    if arrays["energies"] is None:
        raise ParameterError("the atlas has no energy axis (x_keVs); pass calibration=")
    return _identify_atlas(
        arrays, anode or "Rh", tube_kv or 40.0, fwhm6,
        theta if theta is not None else cal_info.get("theta_deg"), "atlas",
    )


def _identify_point(
    counts: ArrayLike, anode: str, tube_kv: float, calibration: CalibrationLike | None,
    fwhm6: float | None,
    theta: float | None, source: str,
) -> Identification:
    y = np.asarray(counts, dtype=float)
    if y.ndim != 1:
        raise ParameterError(f"a spectrum must be 1-D, got shape {y.shape}")
    info: dict[str, Any] = {}
    if calibration is None:
        from maxrf.calibration import auto_calibrate

        try:
            cal = auto_calibrate(y, anode=anode, tube_kv=tube_kv)
        except CalibrationError as exc:
            raise CalibrationError(
                f"no energy calibration found from the counts ({exc.problem}); pass calibration=",
                None if source == "spectrum" else source,
            ) from exc
        e = cal.energies(y.size)
        info = {"theta_deg": cal.theta_deg, "quality": cal.quality or {}}
    else:
        e, info = _calibration_energies(calibration, y.size)
    if fwhm6 is None:
        fwhm6 = None  # measured from the peaks (more reliable than a calibration's guess)
    res = identify_spectrum(
        y, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6,
        theta_deg=theta if theta is not None else info.get("theta_deg"),
    )
    return _aggregate([res], physics.normalize_element(anode), float(tube_kv), source)


def _identify_atlas(
    arrays: Mapping[str, Any], anode: str, tube_kv: float, fwhm6: float | None,
    theta: float | None, source: str,
) -> Identification:
    spectra = np.atleast_2d(arrays["spectra"])
    e = np.asarray(arrays["energies"], dtype=float)
    bases = arrays.get("baselines")
    envs = arrays.get("envelopes")
    # one detector resolution and scattering angle for all spectra, from their sum (more
    # counts than any single pixel; the sum of Poisson counts is Poisson)
    total = spectra.sum(axis=0)
    if fwhm6 is None:
        fwhm6 = estimate_fwhm6(total, e, anode=anode, tube_kv=tube_kv) or physics.DEFAULT_FWHM_KEV
    if theta is None:
        theta = estimate_theta(total, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6)
    if theta is None:
        theta = estimate_theta_from_lines(total, e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6)
    cache: dict[str, list[_Atom]] = {}
    results = []
    for n in range(spectra.shape[0]):
        results.append(
            identify_spectrum(
                spectra[n], e, anode=anode, tube_kv=tube_kv, fwhm_at_6keV=fwhm6, theta_deg=theta,
                baseline=None if bases is None else bases[n],
                envelope=None if envs is None else envs[n], index=n, _cache=cache,
            )
        )
    return _aggregate(results, physics.normalize_element(anode), float(tube_kv), source)


def _identify_datastack(
    ds: DataStack, anode: str | None, tube_kv: float | None, calibration: CalibrationLike | None,
    fwhm6: float | None,
    theta: float | None, write: bool,
) -> Identification:
    cal = ds.calibration or {}
    anode = anode or cal.get("anode") or "Rh"
    tube_kv = tube_kv or cal.get("tube_kv") or 40.0
    arrays = _datastack_atlas(ds, store=write)
    n = arrays["spectra"].shape[1]
    if calibration is not None:
        arrays["energies"], info = _calibration_energies(calibration, n)
    else:
        arrays["energies"] = np.asarray(ds.energies, dtype=float)
        info = {"theta_deg": cal.get("theta_deg")}
    res = _identify_atlas(
        arrays, anode, float(tube_kv), fwhm6,
        theta if theta is not None else info.get("theta_deg"), str(ds.path),
    )
    if write:
        write_identification(ds, res)
    return res


def write_identification(ds: DataStack, ident: Identification) -> None:
    """Store an identification as the DataStack layer ``identification``.

    Parameters
    ----------
    ds : DataStack
        Target store.
    ident : Identification
        The result; its :meth:`Identification.to_dict` becomes the layer's attrs, and the
        per-spectrum confidences the array ``scores`` ``(n_spectra, n_elements)``.
    """
    attrs = ident.to_dict()
    names = [r.element for r in ident.elements]
    scores = np.zeros((len(ident.spectra), len(names)), dtype=np.float32)
    for i, s in enumerate(ident.spectra):
        for k, el in enumerate(names):
            r = s.elements.get(el)
            scores[i, k] = 0.0 if r is None else r.confidence
    attrs["score_elements"] = names
    try:
        ds.write_layer("identification", {"scores": scores}, attrs)
    except MaxrfError:
        raise
    except OSError as exc:  # pragma: no cover - read-only medium
        raise OutputLocationError(f"cannot write the identification layer ({exc})", ds.path) from exc

