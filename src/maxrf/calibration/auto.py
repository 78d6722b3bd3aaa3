"""The public calibration functions on spectra: :func:`auto_calibrate` and :func:`calibrate`.

:func:`auto_calibrate` runs the steps of the algorithm described in
:mod:`maxrf.calibration` (peaks, reference lines, hypotheses, scores, refinement,
scattering angle); :func:`calibrate` dispatches between it and the manual and range
calibrations for the accepted source types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.calibration.choice import (
    _GIVE_MANUAL,
    _choose,
    _judged_at,
    _other_turns,
    _polished,
    _select,
)
from maxrf.calibration.hypotheses import (
    GAIN_RANGE,
    OFFSET_RANGE,
    _anode_pattern_ok,
    _Hyp,
    _hypotheses,
    _refine,
)
from maxrf.calibration.manual import manual_calibration, parse_range, range_calibration
from maxrf.calibration.medium import medium_scores
from maxrf.calibration.observe import _merge, _Obs, _observe, _prepare, _Spec
from maxrf.calibration.references import _anode_main, _Ref, _reference_lines
from maxrf.calibration.results import Calibration
from maxrf.errors import CalibrationError, ParameterError


def _as_1d(y: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{name} must be a numeric 1-D spectrum") from None
    arr = np.squeeze(arr)
    if arr.ndim != 1:
        raise CalibrationError(f"{name} must be a 1-D spectrum, got shape {arr.shape}")
    if arr.size < 64:
        raise CalibrationError(f"{name} has {arr.size} channels; at least 64 are needed")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{name} holds non-finite values (nan or inf)")
    if not np.any(arr > 0):
        raise CalibrationError(f"{name} holds no counts")
    return arr


def auto_calibrate(
    sum_spectrum: Any,
    max_spectrum: Any | None = None,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    gain_range: tuple[float, float] = GAIN_RANGE,
    offset_range: tuple[float, float] = OFFSET_RANGE,
    header: tuple[float, float] | None = None,
) -> Calibration:
    """Energy calibration from the peaks of a spectrum alone, with its verdict.

    Parameters
    ----------
    sum_spectrum : array_like
        Sum (or mean) spectrum of a scan, or a single spectrum (counts per channel).
    max_spectrum : array_like, optional
        Max spectrum of a scan (same channels): adds peaks of elements found in few pixels.
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Tube anode: its lines (Rayleigh scatter) anchor the calibration.
    tube_kv : float
        Tube voltage (kV): which lines are excited.
    gain_range : (float, float)
        Plausible keV per channel.
    offset_range : (float, float)
        Plausible energy of channel 0 (keV).
    header : (gain_keV, offset_keV), optional
        The file's own calibration: compared (check ``header``), never used.

    Returns
    -------
    Calibration
        ``method='auto'``, with the peaks used and their residuals, the scattering angle
        when the Compton peak is found, ``quality`` (``'good'``, ``'doubtful'`` or
        ``'failed'``) with its ``checks``, and search ``diagnostics``.

    Raises
    ------
    CalibrationError
        Bad input, or no calibration at all (fewer than two peaks on known lines).
    """
    y, ym, anode_sym, kv, (g_lo, g_hi) = _check_inputs(sum_spectrum, max_spectrum, anode, tube_kv, gain_range)
    refs, anode_ref, spec, obs = _setup(y, ym, anode_sym, kv)
    if len(obs) < 2:
        raise CalibrationError(
            f"auto calibration found {len(obs)} significant peak(s) in the spectrum; "
            "give a manual calibration (two CHANNEL:KEV pairs) or an energy range"
        )
    kept = _candidates(obs, refs, spec, anode_ref, (g_lo, g_hi), offset_range)
    refined = _refine_all(kept, obs, refs, spec, anode_ref, anode_sym, kv, offset_range)
    distinct = _select(refined, obs, refs, anode_ref)
    if not distinct:
        # a blank with only the anode's Ka and Kb (no zero peak): two peaks on two lines
        # still give a calibration; its verdict says it is not confirmed
        distinct = _select(refined, obs, refs, anode_ref, min_pairs=2)
    if not distinct:
        raise CalibrationError(
            "auto calibration found no consistent solution (no calibration puts three "
            f"peaks on known lines for anode {anode_sym} at {kv:g} kV); check anode/tube_kv "
            "or give a manual calibration (two CHANNEL:KEV pairs) or an energy range"
        )
    cal, best = _choose(distinct, obs, refs, spec, anode_ref, anode_sym, kv, header, (g_lo, g_hi))
    cal, best, distinct = _other_turns(
        cal, best, distinct, refined, obs, refs, spec, anode_ref, anode_sym, kv, header, (g_lo, g_hi)
    )
    cal = _polished(cal, obs, refs, spec, anode_ref, anode_sym, kv, header, (g_lo, g_hi))
    runner_up = max((float(h.score) for h in distinct if h is not best), default=None)
    cal.diagnostics.update(score=float(best.score), runner_up_score=runner_up, n_peaks_found=len(obs),
                           noise_scale=float(spec.scale))
    return cal


def refine_calibration(
    sum_spectrum: Any,
    gain_keV: float,
    offset_keV: float,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    header: tuple[float, float] | None = None,
) -> Calibration:
    """Refine a known approximate calibration on the peaks of a spectrum, with its verdict.

    The peaks within a fraction of a line width of a reference line under the given axis
    are identified with it (no search over other identities), refitted precisely and the
    axis fitted on them, as :func:`auto_calibrate` does for its chosen hypothesis. For an
    axis known to a few tens of eV (a file header, the previous scan's calibration); given
    the true axis of a synthetic spectrum it measures how well the peaks alone pin it.

    Parameters
    ----------
    sum_spectrum : array_like
        Sum (or mean) spectrum of a scan, or a single spectrum (counts per channel).
    gain_keV, offset_keV : float
        Starting calibration: ``E = offset_keV + gain_keV * channel`` (keV).
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    header : (gain_keV, offset_keV), optional
        The file's own calibration: compared (check ``header``), never used.

    Returns
    -------
    Calibration
        ``method='auto'``, with ``quality`` and ``checks`` as from :func:`auto_calibrate`.

    Raises
    ------
    CalibrationError
        Bad input, a starting gain outside the plausible range, or fewer than two peaks
        on lines under the starting axis.
    """
    y, _, anode_sym, kv, gain_range = _check_inputs(sum_spectrum, None, anode, tube_kv, GAIN_RANGE)
    g0, o0 = float(gain_keV), float(offset_keV)
    if not (math.isfinite(g0) and math.isfinite(o0) and gain_range[0] * 0.8 <= g0 <= gain_range[1] * 1.2):
        raise CalibrationError(f"starting calibration gain {gain_keV!r} keV/channel is not plausible")
    refs, anode_ref, spec, obs = _setup(y, None, anode_sym, kv)
    if len(obs) < 2:
        raise CalibrationError(f"found {len(obs)} significant peak(s); {_GIVE_MANUAL}")
    hyp, cal = _judged_at(g0, o0, obs, refs, spec, anode_ref, anode_sym, kv, header, gain_range)
    if cal is None:
        raise CalibrationError(
            f"fewer than two peaks lie on known lines under the starting calibration; {_GIVE_MANUAL}"
        )
    cal.diagnostics.update(score=float(hyp.score), n_peaks_found=len(obs), noise_scale=float(spec.scale))
    return cal


def _setup(
    y: np.ndarray, ym: np.ndarray | None, anode: str, kv: float
) -> tuple[tuple[_Ref, ...], _Ref | None, _Spec, list[_Obs]]:
    """Reference lines, the anode's main line, the prepared sum spectrum and the peaks
    found in it (and in the max spectrum, when given)."""
    refs = _reference_lines(anode, kv)
    spec = _prepare(y, "sum")
    obs = _observe(spec)
    if ym is not None:
        obs = _merge(obs, _observe(_prepare(ym, "max")))
    return refs, _anode_main(refs), spec, obs


def _check_inputs(
    sum_spectrum: Any, max_spectrum: Any, anode: str, tube_kv: float, gain_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray | None, str, float, tuple[float, float]]:
    """Validated spectra, anode symbol, tube voltage (kV) and gain range."""
    y = _as_1d(sum_spectrum, "sum spectrum")
    ym = None
    if max_spectrum is not None:
        ym = _as_1d(max_spectrum, "max spectrum")
        if ym.size != y.size:
            raise CalibrationError(
                f"max spectrum has {ym.size} channels, sum spectrum {y.size}: they must match"
            )
    try:
        anode_sym = physics.normalize_element(anode)
        if anode_sym not in physics.ANODES:
            raise ParameterError("unsupported")
        kv = float(tube_kv)
        if not (math.isfinite(kv) and 1.0 < kv <= 200.0):
            raise ParameterError("bad")
    except (ParameterError, TypeError, ValueError):
        raise CalibrationError(
            f"anode must be one of {', '.join(physics.ANODES)} and tube_kv a voltage in kV; "
            f"got anode={anode!r}, tube_kv={tube_kv!r}"
        ) from None
    g_lo, g_hi = (float(v) for v in gain_range)
    if not (0 < g_lo < g_hi):
        raise CalibrationError(f"gain_range must be (low, high) with 0 < low < high: {gain_range}")
    return y, ym, anode_sym, kv, (g_lo, g_hi)


def _candidates(
    obs: list[_Obs],
    refs: Sequence[_Ref],
    spec: _Spec,
    anode_ref: _Ref | None,
    gain_range: tuple[float, float],
    offset_range: tuple[float, float],
) -> list[_Hyp]:
    """Hypotheses from pairs of peaks x pairs of lines, first-scored; the best kept: those
    that find the anode's main line with its Compton partner, and the best of the others."""
    gains, offsets = _hypotheses(obs, refs, spec.y.size, gain_range, offset_range)
    if gains.size == 0:
        raise CalibrationError(
            "auto calibration: no pair of peaks gives a gain within "
            f"{gain_range[0]}-{gain_range[1]} keV/channel; give a manual calibration or an energy range"
        )
    anode_weight = max(o.weight for o in obs)
    limits = (GAIN_RANGE[0] * 0.8, GAIN_RANGE[1] * 1.2)
    medium, g_med, o_med, verified = medium_scores(
        gains, offsets, obs, refs, spec, anode_ref, anode_weight, limits
    )
    kept: list[_Hyp] = []
    quotas = (40, 25) if np.any(verified > 0) else (0, 60)
    for subset, quota in ((verified > 0, quotas[0]), (verified <= 0, quotas[1])):
        if quota == 0:
            continue
        idx = np.flatnonzero(subset & np.isfinite(medium))
        chosen: list[_Hyp] = []
        for i in idx[np.argsort(medium[idx])[::-1]]:
            g, o = float(g_med[i]), float(o_med[i])
            if any(abs(g - h.gain) < 0.001 * g and abs(o - h.offset) < 0.01 for h in chosen):
                continue
            if (
                anode_ref is not None
                and verified[i] > 0
                and not _anode_pattern_ok(spec, g, o, anode_ref, refs)
            ):
                continue
            chosen.append(_Hyp(g, o))
            if len(chosen) >= quota:
                break
        kept += chosen
    return kept


def _refine_all(
    kept: list[_Hyp], obs: list[_Obs], refs: Sequence[_Ref], spec: _Spec, anode_ref: _Ref | None,
    anode: str, tube_kv: float, offset_range: tuple[float, float] = OFFSET_RANGE,
) -> list[_Hyp]:
    """Every candidate refined and scored (:func:`_refine`), once for all selections; those
    a refinement took out of the plausible offsets (by more than 50 eV) dropped."""
    anode_weight = max(o.weight for o in obs)
    out = [_refine(h, obs, refs, spec, anode_ref, anode_weight, anode, tube_kv) for h in kept]
    return [h for h in out if offset_range[0] - 0.05 <= h.offset <= offset_range[1] + 0.05]


def calibrate(
    source: Any,
    *,
    anode: str | None = None,
    tube_kv: float | None = None,
    manual: Sequence[tuple[float, float]] | str | None = None,
    keV_range: tuple[float, float] | str | None = None,
    n_channels: int | None = None,
) -> Calibration:
    """Calibrate a spectrum: manual pairs or an energy range if given, else automatic.

    Parameters
    ----------
    source : Spectrum, array_like, (sum, max) tuple or object with ``sum_spectrum``
        A :class:`maxrf.io.spectra.Spectrum`, a 1-D spectrum, a ``(sum, max)`` pair, or a
        datastack-like object with ``sum_spectrum`` / ``max_spectrum`` attributes.
    anode : str, optional
        Tube anode; default the spectrum's own (``Spectrum.anode``) or ``'Rh'``.
    tube_kv : float, optional
        Tube voltage (kV); default the spectrum's own or 40.
    manual : sequence of (channel, keV) or str, optional
        Manual calibration pairs (or ``"CH1:KEV1,CH2:KEV2"``); overrides the automatic one.
    keV_range : (start, stop) or str, optional
        Energies of the first and last channel (or ``"START:STOP"``); overrides the
        automatic one.
    n_channels : int, optional
        Number of channels for ``keV_range`` when ``source`` is None.

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        Both ``manual`` and ``keV_range`` given, bad values, or no automatic solution.
    """
    if manual is not None and keV_range is not None:
        raise CalibrationError("give either a manual calibration or an energy range, not both")
    if manual is not None:
        return manual_calibration(manual)
    sum_y, max_y, own_anode, own_kv = _unpack_source(source)
    if keV_range is not None:
        start, stop = parse_range(keV_range) if isinstance(keV_range, str) else keV_range
        if n_channels is None:
            if sum_y is None:
                raise CalibrationError("an energy range needs the number of channels")
            n_channels = int(np.asarray(sum_y).shape[-1])
        return range_calibration(start, stop, n_channels)
    if sum_y is None:
        raise CalibrationError("nothing to calibrate: no spectrum given")
    return auto_calibrate(
        sum_y,
        max_y,
        anode=anode or own_anode or "Rh",
        tube_kv=tube_kv if tube_kv is not None else (own_kv if own_kv is not None else 40.0),
    )


def _unpack_source(source: Any) -> tuple[Any, Any, str | None, float | None]:
    """(sum spectrum, max spectrum, anode, tube_kv) from the accepted source types."""
    if source is None:
        return None, None, None, None
    if hasattr(source, "counts") and hasattr(source, "tube_kv"):  # Spectrum
        return source.counts, None, getattr(source, "anode", None), source.tube_kv
    if hasattr(source, "sum_spectrum"):  # DataStack-like
        # the stored arrays as calibrate_datastack reads them: a maxrf DataStack's
        # spectra are arrays that also answer the seed's call, whose max_spectrum() is the
        # smoothed max (a pass over the cube when not stored); only a method is called
        s, m = source.sum_spectrum, getattr(source, "max_spectrum", None)
        s = s() if callable(s) and not isinstance(s, np.ndarray) else s
        m = m() if callable(m) and not isinstance(m, np.ndarray) else m
        return s, m, None, None
    if isinstance(source, tuple) and len(source) == 2:
        return source[0], source[1], None, None
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
        return source, None, None, None
    raise CalibrationError(f"cannot calibrate a {type(source).__name__}")
