"""The ``rival identity`` check of a calibration: whether a rival reading of its lines
(:mod:`maxrf.calibration.rivals`) explains the spectrum as well.

A rival of the anode's lines counts when its axis puts the anode's main scattered line on
a strong line-like peak the fit neither fits nor reads as anything (:func:`_explained`);
a reading of an element's lines as the tube's own when the fit finds no peak at the
tube's line (:func:`_unseen_own_lines`); a neighbour's reading when every tube line the
fit found holds its place; a swap of the tube's and an element's lines when the widths
speak for it. Any of them leaves the calibration ``doubtful``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.calibration.consistency import BROAD_FACTOR
from maxrf.calibration.match import _fwhm_at
from maxrf.calibration.observe import _Obs
from maxrf.calibration.quality import check
from maxrf.calibration.references import _compton_blended, _Ref, anode_main_line
from maxrf.calibration.rivals import (
    ELEMENT_MATCH_FWHM,
    RIVAL_MIN_SIGNIFICANCE,
    Entry,
    neighbour_axes,
    own_line_axes,
    rival_axes,
    swap_axes,
)


def _explained(
    ob: _Obs, obs: Sequence[_Obs], axis: tuple[float, float], fwhm6: float, anode: str, tube_kv: float,
    element_keV: np.ndarray,
) -> bool:
    """Whether the fit's own axis (gain, offset) reads a peak as something: broader than
    the detector makes a line (a Compton peak, the continuum: a rival scaled by a few per
    cent puts the anode's K-alpha on its own K-beta's Compton peak), at one of the anode's
    Rayleigh lines (K-beta2 beside the fitted K-beta), anywhere in the Compton range of a
    line that blends with its Compton peak (Cu, Cr: one peak whose maximum wanders with
    the angle), at an element's line, or the escape or sum peak of stronger peaks."""
    gain, offset = axis
    e = offset + gain * ob.channel
    fw = float(_fwhm_at(e, fwhm6))
    if ob.fwhm * gain > BROAD_FACTOR * fw:
        return True
    for ln in physics.anode_lines(anode, tube_kv):
        fw_ln = float(_fwhm_at(ln.energy_keV, fwhm6))
        lo = ln.energy_keV - 0.5 * fw_ln
        if _compton_blended(ln.energy_keV):
            lo = float(physics.compton_shift(ln.energy_keV, 180.0)) - fw_ln
        if lo <= e <= ln.energy_keV + 0.5 * fw_ln:
            return True
    if element_keV.size and float(np.min(np.abs(element_keV - e))) <= ELEMENT_MATCH_FWHM * fw:
        return True
    e_obs = offset + gain * np.array([o.channel for o in obs])
    sig = np.array([o.significance for o in obs])
    parents = sig >= 3.0 * ob.significance
    if np.any(np.abs(np.asarray(physics.escape_energy(e_obs[parents])) - e) <= 0.5 * fw):
        return True
    strong = e_obs[sig >= 0.2 * sig.max()]
    return bool(np.any(np.abs(strong[:, None] + strong[None, :] - e) <= fw))


def _scatter_window(keV: float) -> tuple[float, float]:
    """Where (keV) the peak of a line scattered at ``keV`` has its maximum: within half a
    detector FWHM of it, or, when its Compton peak blends with it, from that blend's
    lowest maximum (the Compton peak at 180 degrees, less half a FWHM) on."""
    fw = float(_fwhm_at(keV))
    lo = keV - 0.5 * fw
    if _compton_blended(keV):
        lo = float(physics.compton_shift(keV, 180.0)) - 0.5 * fw
    return lo, keV + 0.5 * fw


def _peak_at_scatter(
    obs: Sequence[_Obs], rival: tuple[float, float], keV: float, taken: Sequence[float],
    explained: Callable[[_Obs], bool],
) -> _Obs | None:
    """The strongest peak not fitted (its channels ``taken``) nor ``explained`` by the fit
    where the scattered line at ``keV`` shows under the ``rival`` axis (gain, offset): its
    Rayleigh peak within half a FWHM, or, when its Compton peak blends with it, anywhere
    from that blend's lowest maximum (the Compton peak at 180 degrees) to half a FWHM
    above."""
    lo, hi = _scatter_window(keV)
    hits = []
    for o in obs:
        e = rival[1] + rival[0] * o.channel
        if not lo <= e <= hi or o.significance < RIVAL_MIN_SIGNIFICANCE:
            continue
        if any(abs(o.channel - t) <= 0.5 * max(o.fwhm, 1.0) for t in taken) or explained(o):
            continue
        hits.append(o)
    if not hits:
        return None
    best = max(hits, key=lambda o: o.significance)
    if not _compton_blended(keV) and not _compton_partner(obs, rival, keV, best):
        return None  # a Rayleigh line without its Compton peak is no scattered line
    return best


def _compton_partner(obs: Sequence[_Obs], rival: tuple[float, float], keV: float, rayleigh: _Obs) -> bool:
    """Whether a peak (8 sigma or more) other than ``rayleigh`` lies where the Compton
    peak of the scattered line at ``keV`` can be under the ``rival`` axis (gain, offset):
    between its place at 180 degrees (less half a FWHM) and one FWHM below the line."""
    fw = float(_fwhm_at(keV))
    lo, hi = float(physics.compton_shift(keV, 180.0)) - 0.5 * fw, keV - fw
    e = rival[1] + rival[0] * np.array([o.channel for o in obs])
    return any(o is not rayleigh and o.significance >= 8.0 and lo <= ek <= hi for o, ek in zip(obs, e))


def rival_anode_check(
    entries: Sequence[Entry], obs: Sequence[_Obs], refs: Sequence[_Ref], axis: tuple[float, float], n: int,
    anode: str | None, tube_kv: float, fwhm6: float,
) -> dict[str, Any] | None:
    """Whether another element's line pair, read where the fit reads the anode's, explains
    the spectrum as well: its axis fits the fitted peaks (:func:`rival_axes`) and puts the
    anode's main scattered line on a strong line-like peak the fit neither fits nor reads
    as anything (:func:`_explained`), with a Compton peak below it where the line's
    Compton peak is resolved from it (Mo, Rh, Ag K; not Cu, Cr K).

    Parameters
    ----------
    entries : sequence of (reference, channel, channel error, used)
        The fitted peaks of a calibration.
    obs : sequence of _Obs
        The peaks found in the spectrum.
    refs : sequence of _Ref
        The reference lines (element lines explain peaks).
    axis : (float, float)
        The calibration (gain keV/channel, offset keV).
    n : int
        Number of channels.
    anode : str or None
        Tube anode (None: no check).
    tube_kv : float
        Tube voltage (kV).
    fwhm6 : float
        Detector FWHM at 5.9 keV (keV) the fit implies.

    Returns
    -------
    dict or None
        The ``rival identity`` check (not critical: the rival is an alternative, not a
        refutation); None when no fitted anode line has a rival that fits.
    """
    if anode is None:
        return None
    gain, offset = axis
    main = anode_main_line(anode, tube_kv)
    rivals = rival_axes(entries, gain, n, anode, tube_kv) if main is not None else []
    taken = [c for _r, c, _e, u in entries if u]
    element_keV = np.array([r.keV for r in refs if r.kind == "element"])

    def explained(ob: _Obs) -> bool:
        return _explained(ob, obs, axis, fwhm6, anode, tube_kv, element_keV)

    hits = [(name, (g1, o1), shift, pk) for name, g1, o1, shift, _rms in rivals if main is not None
            and (pk := _peak_at_scatter(obs, (g1, o1), main.energy_keV, taken, explained))]
    own = _unseen_own_lines(entries, obs, axis, n, anode, tube_kv)
    near = [(name, (g1, o1), shift)
            for name, g1, o1, shift, _rms in neighbour_axes(entries, gain, n, anode, tube_kv)]
    swaps = [(name, (g1, o1), shift)
             for name, g1, o1, shift, _rms in swap_axes(entries, obs, refs, axis, n, anode, tube_kv, fwhm6)]
    if not hits and not own and not near and not swaps:
        if not rivals:
            return None
        return check("rival identity", True, f"no other element's lines read as {anode}'s leave "
                     f"{anode}'s scatter at a strong peak ({', '.join(r[0] for r in rivals[:4])} fit "
                     "as well but find nothing there)")
    found = [(name, ax, shift) for name, ax, shift, _pk in hits] + swaps + own + near
    message, shift = _rival_message(hits, swaps, own, near, anode, axis)
    return check("rival identity", False, message, rivals=[f[0] for f in found],
                 rival_axes=[[float(f[1][0]), float(f[1][1])] for f in found], shift_eV=float(shift))


Rival = tuple[str, tuple[float, float], float]


def _rival_message(
    hits: Sequence[tuple[str, tuple[float, float], float, _Obs]], swaps: Sequence[Rival],
    own: Sequence[Rival], near: Sequence[Rival], anode: str, axis: tuple[float, float],
) -> tuple[str, float]:
    """What the ``rival identity`` check says about the first of its rivals (a scatter
    ``hits``, then ``swaps``, then ``near``, then ``own`` readings), and that rival's
    largest shift (eV) over 2-20 keV."""
    gain, offset = axis
    if hits:
        name, _ax, shift, pk = hits[0]  # the rival that fits the peaks best
        return (f"the {anode} lines of the fit may be {' or '.join(h[0] for h in hits[:3])} lines: the "
                f"{name} axis fits the same peaks, moves by up to {shift:.0f} eV over 2-20 keV and puts "
                f"{anode}'s scatter on the {pk.significance:.0f}-sigma peak at "
                f"{offset + gain * pk.channel:.2f} keV this fit leaves out"), shift
    if swaps:
        name, _ax, shift = swaps[0]
        read = name.split(", ")[0]
        return (f"the fit's {read.split(' for ')[1]} lines are broader than its {anode} scatter: read as "
                f"{anode}'s scatter ({name}), their axis fits the same peaks and moves by up to "
                f"{shift:.0f} eV over 2-20 keV"), shift
    if not own:
        name, _ax, shift = near[0]
        return (f"the fit's {name.split(' for ')[1]} lines may be {name.split(' for ')[0]} lines: read "
                f"so, their axis fits the same peaks as well and moves by up to {shift:.0f} eV over "
                "2-20 keV; nothing in the fit tells the two apart"), shift
    name, _ax, shift = own[0]
    return (f"the fit's {name.split(' for ')[1]} lines may be {anode}'s own scatter ({name}): "
            f"read so, their axis fits the same peaks and moves by up to {shift:.0f} eV over "
            f"2-20 keV, while this fit finds no peak where it puts {anode}'s line"), shift


def _unseen_own_lines(
    entries: Sequence[Entry], obs: Sequence[_Obs], axis: tuple[float, float], n: int, anode: str,
    tube_kv: float,
) -> list[tuple[str, tuple[float, float], float]]:
    """The readings of :func:`own_line_axes` whose anode line the fit's ``axis`` (gain,
    offset) leaves without a peak where its scatter peaks (:func:`_scatter_window`): a
    peak near the tube's own line read as another element's while the tube's is missing
    (a primary filter that removes the tube's soft lines removes them wherever the axis
    puts them; that alone is no evidence): (name, (gain, offset), shift eV)."""
    gain, offset = axis
    e_obs = offset + gain * np.array([o.channel for o in obs])
    out = []
    for name, g1, o1, shift, _rms, line_keV in own_line_axes(entries, gain, n, anode, tube_kv):
        lo, hi = _scatter_window(line_keV)
        if not np.any((e_obs >= lo) & (e_obs <= hi)):
            out.append((name, (g1, o1), shift))
    return out
