"""Identification of one spectrum: :func:`identify_spectrum` and its result.

Holds :func:`identify_spectrum` (checks the inputs, prepares the spectrum, runs the
selection), :func:`_finish` (statuses, counts, the fitted model) and
:func:`_explain_peaks` (instrument peaks seen, labels of the observed peaks, unexplained
peaks; step 6 of the notes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.identify.confidence import calibrated_confidence
from maxrf.identify.constants import _SQRT2PI, EXCLUDED, INSTRUMENT_Z
from maxrf.identify.context import _gauss_profile, _SpectrumContext
from maxrf.identify.fitting import _Atom, candidate_elements
from maxrf.identify.instrument import instrument_windows, match_instrument
from maxrf.identify.results import ElementResult, ObservedPeak, SpectrumIdentification
from maxrf.identify.selection import _Selector
from maxrf.types import ArrayLike


def identify_spectrum(
    counts: ArrayLike,
    energies: ArrayLike,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    fwhm_at_6keV: float | None = None,
    theta_deg: float | None = None,
    baseline: ArrayLike | None = None,
    envelope: ArrayLike | None = None,
    candidates: Sequence[str] | None = None,
    systematic: float = 1.0,
    index: int = 0,
    _cache: dict[str, list[_Atom]] | None = None,
) -> SpectrumIdentification:
    """Identify the elements of one calibrated spectrum (see the module notes).

    Parameters
    ----------
    counts : array_like
        ``(C,)`` counts per channel (a single-pixel or point spectrum: Poisson counts).
    energies : array_like
        ``(C,)`` channel energies (keV), increasing.
    anode : str
        Tube anode (never reported as an element).
    tube_kv : float
        Tube voltage (kV).
    fwhm_at_6keV : float, optional
        Detector FWHM (keV) at 5.9 keV; measured from the peaks when None.
    theta_deg : float, optional
        Scattering angle (degrees); from the Compton peak when None.
    baseline, envelope : array_like, optional
        ``(C,)`` baseline and noise envelope (counts), e.g. from the hotmax atlas; computed
        with :mod:`maxrf.peaks` when None.
    candidates : sequence of str, optional
        Elements to consider; default :func:`candidate_elements` of the observed peaks.
    systematic : float
        Scale of the model's systematic uncertainty in the fit weights (:data:`SYSTEMATIC`,
        :data:`WING_ERROR`, :data:`DYNAMIC_RANGE`); 0 weighs by counting statistics only.
    index : int
        Spectrum index recorded in the evidence.

    Returns
    -------
    SpectrumIdentification

    Raises
    ------
    ParameterError
        Mismatched or invalid inputs.
    """
    y, e, anode, tube_kv, base, env = _check_inputs(counts, energies, anode, tube_kv, baseline,
                                                    envelope)
    ctx = _SpectrumContext(
        y, e, anode=anode, tube_kv=tube_kv, fwhm6=fwhm_at_6keV, theta=theta_deg, base=base,
        env=env, eps=float(systematic), index=int(index),
    )
    candidates = _candidates(ctx, candidates, anode, tube_kv)
    sel = _Selector(ctx, candidates, _cache)
    sel.run()
    return _finish(sel)


def _check_inputs(counts: ArrayLike, energies: ArrayLike, anode: str, tube_kv: float,
                  baseline: ArrayLike | None, envelope: ArrayLike | None
                  ) -> tuple[np.ndarray, np.ndarray, str, float, np.ndarray | None, np.ndarray | None]:
    """The spectrum, its energies, anode, voltage, baseline and envelope, checked."""
    y = np.asarray(counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    if y.ndim != 1 or e.shape != y.shape or y.size < 16:
        raise ParameterError(
            f"counts and energies must be 1-D of the same length (>= 16); got {y.shape}, {e.shape}"
        )
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(e)) and np.all(np.diff(e) > 0)):
        raise ParameterError("counts must be finite and energies strictly increasing (keV)")
    anode = physics.normalize_element(anode)
    if anode not in physics.ANODES:
        raise ParameterError(f"anode must be one of {', '.join(physics.ANODES)}; got {anode!r}")
    tube_kv = float(tube_kv)
    if not (math.isfinite(tube_kv) and 1.0 < tube_kv <= 200.0):
        raise ParameterError(f"tube_kv must be a voltage in kV, got {tube_kv!r}")
    base = None if baseline is None else np.asarray(baseline, dtype=float)
    env = None if envelope is None else np.asarray(envelope, dtype=float)
    for name, arr in (("baseline", base), ("envelope", env)):
        if arr is not None and arr.shape != y.shape:
            raise ParameterError(f"{name} has shape {arr.shape}, the spectrum {y.shape}")
    return y, e, anode, tube_kv, base, env


def _candidates(ctx: _SpectrumContext, candidates: Sequence[str] | None, anode: str,
                tube_kv: float) -> list[str]:
    """The elements considered: those given (less the anode and the excluded ones), or those
    whose lines match the observed peaks."""
    if candidates is None:
        return candidate_elements(
            ctx.peak_keV, tube_kv=tube_kv, fwhm_at_6keV=ctx.fwhm6, exclude=[anode],
            max_keV=float(ctx.e[ctx.sel][-1]) if ctx.sel.any() else None,
        )
    candidates = [physics.normalize_element(c) for c in candidates]
    return [c for c in candidates if c != anode and c not in EXCLUDED]


def _finish(sel: _Selector) -> SpectrumIdentification:
    ctx = sel.ctx
    sel.reweight()
    cols, x, chi2 = sel.solve(sel.accepted)
    evals = {el: sel.evaluate(el, sel.accepted if el in sel.accepted else sel.accepted + [el])
             for el in sel.models}
    strongest = max((evals[el].counts for el in sel.accepted), default=0.0)
    results: dict[str, ElementResult] = {}
    for el, ev in evals.items():
        if el in sel.accepted:
            status = "present" if ev.passes_present else "possible"
        else:
            status = "possible" if ev.passes_possible else "absent"
        rel = ev.counts / strongest if strongest > 0 else 0.0
        lines = ev.lines if status != "absent" else [ln for ln in ev.lines if ln.visible or ln.seen]
        results[el] = ElementResult(
            el, status, calibrated_confidence(status, ev.confidence), ev.counts, rel, ev.z, ev.dchi2,
            ev.fraction, lines, [ctx.index]
        )
    model_net = sel.full_model(cols, x)
    instrument, peaks, unexplained, unexplained_counts = _explain_peaks(sel, cols, x, model_net)
    n_fit = int(np.count_nonzero(ctx.sel))
    return SpectrumIdentification(
        index=ctx.index,
        elements=results,
        instrument=instrument,
        peaks=peaks,
        unexplained_keV=unexplained,
        energies=ctx.e,
        counts=ctx.y,
        baseline=ctx.base,
        envelope=ctx.env,
        model=ctx.base + model_net,
        fwhm_at_6keV=ctx.fwhm6,
        theta_deg=ctx.theta,
        chi2_reduced=float(chi2 / max(n_fit - len(cols), 1)),
        unexplained_counts=unexplained_counts,
    )


def _explain_peaks(
    sel: _Selector, cols: Sequence[int], x: np.ndarray, model_net: np.ndarray
) -> tuple[list[dict[str, Any]], list[ObservedPeak], list[float], list[float]]:
    """Instrument peaks seen, labels of the observed peaks, unexplained peaks."""
    ctx, fit = sel.ctx, sel.fit
    noise_env = ctx.env - ctx.base
    fit_var = sel.fit_var_full
    # net area of every part of the final model: (part, component kind, element) -> area
    areas: dict[tuple[str, str, str | None], list] = {}
    for k, j in enumerate(cols):
        comp = fit.comps[j]
        if x[k] == 0:
            continue
        for p in comp.parts:
            key = (p.label, comp.kind if comp.kind != "element" else "element", comp.element)
            if key not in areas:
                areas[key] = [p, 0.0]
            areas[key][1] += x[k] * p.frac
    parts = [(p, kind, el, area) for (_, kind, el), (p, area) in areas.items() if area > 0]
    instrument: list[dict[str, Any]] = []
    for p, kind, el, area in parts:
        if kind == "element" and p.kind != "escape":
            continue
        if not (ctx.e[0] <= p.keV <= ctx.e[-1]):
            continue
        i = int(np.argmin(np.abs(ctx.e - p.keV)))
        height = area * ctx.gain[i] / (p.fwhm / physics.FWHM_PER_SIGMA * _SQRT2PI)
        if not ctx.sel[i]:
            continue
        # seen: above the envelope, or a broad peak (Compton) whose fitted area is significant
        _, se, _, _ = sel._local_peak(ctx.net - model_net, p.keV, p.fwhm)
        if height > noise_env[i] or area >= INSTRUMENT_Z * se:
            name = p.label if kind != "element" else f"{el} {p.label}"
            kd = "escape" if p.kind == "escape" else kind
            instrument.append({"name": name, "keV": round(float(p.keV), 4), "kind": kd,
                               "counts": float(area)})
    if ctx.e[0] < 0 < ctx.e[-1]:  # the zero peak, when the axis holds 0 keV
        i0 = int(np.argmin(np.abs(ctx.e)))
        lo, hi = max(i0 - 3, 0), min(i0 + 4, ctx.e.size)
        if np.max(ctx.ys[lo:hi]) > ctx.env[i0]:
            instrument.append({"name": "zero peak", "keV": 0.0, "kind": "zero",
                               "counts": float(ctx.y[lo:hi].sum())})
    instrument.sort(key=lambda d: d["keV"])
    peaks: list[ObservedPeak] = []
    unexplained: list[float] = []
    unexplained_counts: list[float] = []
    windows = instrument_windows(ctx.anode, ctx.tube_kv, ctx.theta, ctx.fwhm6)
    for i, keV in zip(ctx.peak_idx, ctx.peak_keV):
        net = float(ctx.ys[i] - ctx.base[i])
        explained = float(model_net[i] / net) if net > 0 else 1.0
        best, best_h = None, 0.0
        for p, kind, el, area in parts:
            if abs(p.keV - keV) > 1.5 * p.fwhm:
                continue
            h = area * _gauss_profile(np.array([ctx.e[i]]), p.keV, p.fwhm)[0] * ctx.gain[i]
            if h > best_h:
                best, best_h = (p, kind, el), h
        resid = net - model_net[i]
        sigma = math.sqrt(fit_var[i])
        win = match_instrument(float(keV), windows)
        if best is not None and explained >= 0.5 and resid <= 5.0 * sigma:
            p, kind, el = best
            if kind == "element":
                label = f"{el} {p.label}"
                kd = "escape" if p.kind == "escape" else "element"
            else:
                label, kd = p.label, ("escape" if p.kind == "escape" else kind)
        elif win is not None:
            # at an anode Rayleigh / Compton line (K or L), its escape or argon: an
            # instrument peak whatever the fitted shape left over (the Compton profile is
            # broad and asymmetric)
            label, kd = win.name, win.kind
        else:
            label, kd = "?", "unexplained"
            unexplained.append(float(keV))
            fw = float(physics.fwhm_keV(keV, ctx.fwhm6))
            near = np.abs(ctx.e - keV) <= fw
            unexplained_counts.append(float(max(np.sum(ctx.net[near] - model_net[near]), 0.0)))
        peaks.append(ObservedPeak(float(keV), int(i), net, label, kd, explained))
    return instrument, peaks, unexplained, unexplained_counts
