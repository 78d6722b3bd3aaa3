"""Rival identities of the anode's lines: a sample element whose line pair looks like the tube's.

A calibration that rests on the zero peak and the anode's two scattered lines (K-alpha
and K-beta, or L-alpha and L-beta) tests only their energy ratio. Neighbouring elements
share that ratio within a few 0.1 %: Co K-beta/K-alpha is 1.104, Cu's 1.107, so a
spectrum with much Co scattered by a Cu tube fits the zero peak and Co K-alpha, K-beta
taken for Cu K-alpha, K-beta within 2 eV, 3.2 keV off. The pairs whose ratios agree well
enough to fit (xraydb, the K-beta residual of a zero-pinned axis within 30 eV): Cu K with
Fe, Co, Ni, Zn K (and Eu, Gd L); Cr K with Ti, V, Mn, Fe K; Mo K with Zr, Nb K; Rh K with
Ru, Pd K; Ag K with Pd, Cd K; the soft L lines of Mo, Rh and Ag with Al, Si, P K. W L has
none.

Such a rival is told apart by the tube's own scatter: under the rival, the anode's lines
must still be somewhere, at the energies the rival's axis puts them. A strong line-like
peak there that the chosen calibration neither fits nor reads as anything (a line, an
escape or sum peak, the tube's Rayleigh or Compton scatter), with a Compton peak below
it where the anode's line and its Compton peak are resolved, makes the rival as good an
account of the spectrum (the real Cu K-alpha scatter peak left unexplained at 9.32 keV
under the wrong axis of seed 90003; the Rh K-alpha Rayleigh peak read as its own
Compton peak when Pd K is read as Rh K). :func:`rival_axes` finds the rivals that fit
the fitted peaks as well; :func:`maxrf.calibration.rival_check.rival_anode_check` is
the verdict's check: the calibration is then ``doubtful``, never ``good``. In a blank
the rival scaled by a few per cent puts the anode's K-alpha on its own K-beta's (or
K-alpha's) Compton peak: broad, no line, no rival.

The mirror case: the fit reads the tube's own scattered lines as a neighbour's (a Ag
tube's L-alpha, L-beta as Cd L-alpha, L-beta, 150 eV above them, beyond the alias
window; seed 300182, 167 eV off). :func:`own_line_axes` reads each fitted element's lines
as the anode's lines of the same role; a reading that fits the fitted peaks as well,
while the fit's axis finds no peak where the tube's line scatters, is a rival too. A
primary filter may remove the tube's soft lines, so their absence alone is no evidence:
the near peak, read as the tube's line by an axis that fits every fitted peak, is.

And the sample's own lines: with the zero peak, an element's K-alpha and K-beta and its
neighbour's differ by a mere scale (Moseley), and soft tube blends (Cr K) absorb a few per
cent of gain (seed 800187: Ag K-beta read as Cd's, 870 eV off, called good).
:func:`neighbour_axes` reads each fitted element's lines as its neighbours' of the same
role; a reading that fits the fitted peaks as well while every tube line the fit found
stays on its place leaves the identity open: the calibration is ``doubtful``.

The same scale swaps the roles: a Cr tube's K blends read as Ti K while a sample's Fe K
passes for the tube's Cr K (dev 400271, 3.1 keV off, every peak on its line).
:func:`swap_axes` reads the fitted element's lines as the tube's scatter, and the tube's
as a third element's, when the element's peaks are broader than the tube's: the tube's
peaks are Rayleigh lines with their Compton partners, never narrower than one line.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from maxrf import physics
from maxrf.calibration.consistency import ALIAS_SHIFT_EV, _line_peak, axis_sys_keV
from maxrf.calibration.match import _fwhm_at, fit_axis
from maxrf.calibration.observe import _Obs
from maxrf.calibration.quality import RESIDUAL_TOL_EV, axis_difference_eV
from maxrf.calibration.references import (
    _cluster_fwhm,
    _family_refs,
    _rayleigh_keV,
    _Ref,
)

Entry = tuple[_Ref, float, float, bool]

#: a line group of one family stands for the same role in another: the main line and its
#: strongest companion (Rh L-alpha, L-beta read as Si K-alpha, K-beta)
_ROLE = {"Ka": "main", "La": "main", "Kb": "companion", "Lb": "companion"}
#: a rival line may be this fraction of a detector FWHM off its peak and still fit: the
#: hypothesis search matches peaks within 0.3 FWHM, and the rival's K-beta often blends
#: with the anode's Compton peak (Co K-beta beside Cu K-alpha's, 20-25 eV off)
RIVAL_FWHM_FRACTION = 0.25
#: a peak within this fraction of a detector FWHM of an element's line is that line
ELEMENT_MATCH_FWHM = 0.3
#: elements no sample shows (no stable or long-lived isotope; noble gases but air's Ar)
NO_SAMPLE_ELEMENTS = frozenset({"Ne", "Kr", "Xe", "Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Pa"})
#: least significance of a peak at the anode's line under a rival for the rival to count
RIVAL_MIN_SIGNIFICANCE = 15.0


@functools.lru_cache(maxsize=256)
def _element_groups(element: str, tube_kv: float) -> tuple[tuple[str, _Ref], ...]:
    """(family, reference) of the K and L line groups of an element as the detector sees
    them (components merged as for the reference lines)."""
    lines = physics.element_lines(element, tube_kv, min_keV=0.9, min_rel=0.005)
    out: list[tuple[str, _Ref]] = []
    for fam in ("K", "L"):
        fam_lines = [ln for ln in lines if ln.family == fam]
        out += [(fam, r) for r in _family_refs(element, fam_lines, "element", 0.01, True, ())]
    return tuple(out)


def _rival_line(ref: _Ref, element: str, families: dict[str, str], tube_kv: float) -> _Ref | None:
    """The line of ``element`` that plays the part of the anode line (or its escape peak)
    ``ref`` in a rival identity mapping the anode's line families to the element's
    (``{'K': 'K', 'L': 'L'}``, or ``{'L': 'K'}``); None when it has none."""
    group = ref.group.removesuffix(" escape")
    family = families.get(group[0])
    groups = {r.group: r for fam, r in _element_groups(element, tube_kv) if fam == family}
    if group[0] != family:  # across families by role: K-alpha for L-alpha
        role = _ROLE.get(group)
        group = next((g for g, ro in _ROLE.items() if ro == role and g[0] == family), "")
    line = groups.get(group)
    if line is None or ref.kind != "escape":
        return line
    return replace(line, keV=float(physics.escape_energy(line.keV)), kind="escape")


def _family_maps(refs: Sequence[_Ref]) -> list[dict[str, str]]:
    """How a rival element's line families may stand for the anode's fitted ones: each for
    its own; and, when the fit holds one family of the anode's only, the other (Rh
    L-alpha, L-beta read as Si K-alpha, K-beta)."""
    fams = sorted({r.group[0] for r in refs})
    maps = [{f: f for f in fams}]
    if fams in (["K"], ["L"]):
        maps.append({fams[0]: "L" if fams[0] == "K" else "K"})
    return maps


def rival_axes(
    entries: Sequence[Entry], gain: float, n: int, anode: str, tube_kv: float
) -> list[tuple[str, float, float, float, float]]:
    """The rival identities of the fitted anode lines that fit the fitted peaks as well.

    Every fitted line of the anode (and escape peak of one) is read as the same line of
    another element (Z 11-92; K-alpha for L-alpha across families); the zero peak keeps
    its place, and every other fitted peak keeps its line or becomes the rival element's
    line nearest to it under the axis these give (Pd K-beta2 read as Cd K-alpha while Pd
    K-alpha, K-beta are read as Rh's). A rival fits when every fitted peak lands within
    the residual tolerance of the refitted axis (or :data:`RIVAL_FWHM_FRACTION` of a
    FWHM), and counts when that axis differs by more than
    :data:`maxrf.calibration.consistency.ALIAS_SHIFT_EV` over 2-20 keV.

    Returns
    -------
    list of (name, gain_keV, offset_keV, shift_eV, rms_eV)
        ``name`` as ``'Co K'``; the rival axis; its largest difference from the fit's;
        the rms residual of the fitted peaks under it. Best fitting first.
    """
    used = [(r, c, err) for r, c, err, u in entries if u]
    anode_idx = [i for i, (r, _c, _e) in enumerate(used) if _is_anode(r, anode)]
    if len(used) < 3 or not anode_idx or not any(
            used[i][0].kind != "escape" for i in anode_idx):
        return []
    out = []
    for z in range(11, 93):
        el = physics.normalize_element(z)
        if el == anode or el in NO_SAMPLE_ELEMENTS:
            continue
        for fams in _family_maps([used[i][0] for i in anode_idx]):
            fit = _reread(used, gain, n, anode_idx, el, fams, tube_kv, anode)
            if fit is not None:
                out.append((f"{el} {'/'.join(sorted(set(fams.values())))}", *fit))
    return sorted(out, key=lambda t: t[4])


def _is_anode(ref: _Ref, anode: str) -> bool:
    """Whether a reference line is one of the anode's (Rayleigh, scatter blend, escape)."""
    return ref.element == anode and ref.kind in ("anode", "scatter", "escape")


Reading = tuple[Sequence[int], str, dict[str, str]]


def _reread(
    used: Sequence[tuple[_Ref, float, float]], gain: float, n: int, idx: Sequence[int], element: str,
    fams: dict[str, str], tube_kv: float, anode: str, also: Reading | None = None,
    tube: dict[str, _Ref] | None = None,
) -> tuple[float, float, float, float] | None:
    """The fitted peaks (reference, channel, channel error) with those at ``idx`` read as
    ``element``'s lines of the same role (families mapped by ``fams``), and those of
    ``also`` (indices, element, families) as its element's, the zero peak and the
    ``anode``'s fitted lines pinned, every other peak its own line or the nearest of the
    elements read: (gain, offset, largest shift eV over 2-20 keV from the fit's axis, rms
    eV) when that axis fits every peak and moves by more than
    :data:`maxrf.calibration.consistency.ALIAS_SHIFT_EV`; else None. ``tube``: the
    anode's reference lines by group (``'Ka'``), which peaks read as the anode's take
    (its scatter blends, whose maximum the Compton peak moves) instead of its lines."""
    reads = [(idx, element, fams)] + ([also] if also is not None else [])
    alt_refs = [(i, tube.get(used[i][0].group) if tube is not None and el == anode
                 else _rival_line(used[i][0], el, fm, tube_kv)) for ix, el, fm in reads for i in ix]
    if any(a is None for _i, a in alt_refs):
        return None
    c = np.array([u[1] for u in used])
    kev = np.array([u[0].keV for u in used])
    err = np.array([gain * u[2] for u in used])
    s = np.hypot(err, [axis_sys_keV(u[0]) for u in used])
    alt, s_alt = kev.copy(), s.copy()
    for i, a in alt_refs:
        alt[i] = a.keV
        s_alt[i] = math.hypot(err[i], axis_sys_keV(a))
    if np.allclose(alt, kev, atol=0.005):
        return None
    pinned = np.array([u[0].kind == "zero" or _is_anode(u[0], anode) for u in used])
    pinned[[i for i, _a in alt_refs]] = True
    own = np.array([r.keV for _ix, el, _fm in reads for _f, r in _element_groups(el, tube_kv)])
    fit = _rival_fit(c, alt, s_alt, pinned, own)
    if fit is None:
        return None
    g1, o1, rms = fit
    shift = axis_difference_eV(fit_axis(c, kev, s), (g1, o1), n) or 0.0
    return (g1, o1, shift, rms) if shift > ALIAS_SHIFT_EV else None


def _own_families(used: Sequence[tuple[_Ref, float, float]], idx: Sequence[int]) -> dict[str, str]:
    """The family map reading the fitted lines at ``idx`` as another element's of the same
    role: each family for itself (K for K)."""
    return {used[i][0].group[0]: used[i][0].group[0] for i in idx}


def _fitted_elements(used: Sequence[tuple[_Ref, float, float]], anode: str) -> dict[str, list[int]]:
    """The sample elements among the fitted peaks, each with the indices of its lines."""
    out: dict[str, list[int]] = {}
    for i, (r, _c, _e) in enumerate(used):
        if r.kind == "element" and r.element not in (None, anode):
            out.setdefault(r.element, []).append(i)
    return dict(sorted(out.items()))


def own_line_axes(
    entries: Sequence[Entry], gain: float, n: int, anode: str, tube_kv: float
) -> list[tuple[str, float, float, float, float, float]]:
    """The readings of another element's fitted lines as the anode's own lines of the same
    role that fit the fitted peaks as well: the mirror of :func:`rival_axes` (the Ag tube's
    scattered L-alpha, L-beta read as Cd L-alpha, L-beta, 150 eV above them), when the fit
    holds a line of the anode's (its K-alpha, K-beta: they pin the axis far from the pair).

    Returns
    -------
    list of (name, gain_keV, offset_keV, shift_eV, rms_eV, line_keV)
        ``name`` as ``'Ag L for Cd L'``; the axis of that reading, its largest difference
        from the fit's over 2-20 keV, the rms residual of the fitted peaks under it; the
        anode line (keV) the element's strongest fitted line becomes. Best fitting first.
    """
    used = [(r, c, err) for r, c, err, u in entries if u]
    # the tube's fitted lines hold the axis the element's lines are read against
    if len(used) < 3 or not any(_is_anode(r, anode) and r.kind != "escape" for r, _c, _e in used):
        return []
    out = []
    for el, idx in _fitted_elements(used, anode).items():
        main = max((used[i][0] for i in idx), key=lambda r: r.strength)
        for fams in _family_maps([used[i][0] for i in idx]):
            fit = _reread(used, gain, n, idx, anode, fams, tube_kv, anode)
            line = _rival_line(main, anode, fams, tube_kv)
            if fit is not None and line is not None:
                name = f"{anode} {'/'.join(sorted(set(fams.values())))} for {el} {'/'.join(sorted(fams))}"
                out.append((name, *fit, line.keV))
    return sorted(out, key=lambda t: t[4])


#: how far in atomic number a fitted element's lines are read as another's
NEIGHBOUR_REACH = 2


#: how much broader, against the detector's width for one line at its energy, the peak
#: of a fitted element's main line must be than every peak of the anode's fitted lines
#: for the two to be read the other way round (:func:`swap_axes`): elastic scatter keeps a
#: line's width and its Compton partner only broadens the tube's peaks, so in a right
#: reading an element's line is the narrower one, unless sample lines overlap it
SWAP_WIDTH_RATIO = 1.15


def swap_axes(
    entries: Sequence[Entry], obs: Sequence[_Obs], refs: Sequence[_Ref], axis: tuple[float, float], n: int,
    anode: str, tube_kv: float, fwhm6: float,
) -> list[tuple[str, float, float, float, float]]:
    """The readings that swap a fitted element's lines with the anode's: the element's
    lines read as the anode's scatter and the anode's fitted lines as a third element's,
    when they fit the fitted peaks as well and the widths speak for them.

    With the zero peak, K lines two atomic numbers apart differ by a mere scale (Moseley):
    a Cr tube's K blends read as Ti K and a sample's Fe K read as the tube's Cr K fit the
    zero peak and all four lines within 10 eV, 3.1 keV off (dev 400271). Positions cannot
    tell the two apart; widths can. The tube's peaks are its Rayleigh lines, one line
    wide, with their Compton partners beside or under them; an element's line is one
    line wide. A reading whose element line is far broader (:data:`SWAP_WIDTH_RATIO`,
    each against one line's width at its energy, ``fwhm6`` keV at 5.9 keV) than every
    peak (30 sigma) at the places it gives the anode's lines (``refs``) has them the wrong
    way round.

    Returns
    -------
    list of (name, gain_keV, offset_keV, shift_eV, rms_eV)
        ``name`` as ``'Cr K for Ti K, Fe K for Cr K'``; as :func:`rival_axes`. Best
        fitting first.
    """
    gain = axis[0]
    used = [(r, c, err) for r, c, err, u in entries if u]
    if len(used) < 3:
        return []

    def width(o: _Obs | None, keV: float, ref: _Ref, wide: bool = False) -> float | None:
        """Peak ``o``'s width (its larger estimate when ``wide``: the tube's, so that the
        test errs towards the fit) against one line's at ``keV`` (with ``ref``'s spread)."""
        one_line = math.hypot(float(_fwhm_at(keV, fwhm6)), _cluster_fwhm(ref))
        return None if o is None else (o.widest if wide else o.fwhm) * gain / one_line

    tube_w = [w for r in refs if _is_anode(r, anode) and r.kind != "escape" and r.strength >= 0.1
              and (w := width(_tube_peak(obs, axis, r), _rayleigh_keV(r), r, wide=True)) is not None]
    if not tube_w:
        return []
    anode_idx = [i for i, (r, _c, _e) in enumerate(used) if _is_anode(r, anode) and r.kind != "escape"]
    tube = {r.group: r for r in refs if _is_anode(r, anode) and r.kind != "escape"}
    tube_fams = _own_families(used, anode_idx)
    tube_role = "/".join(sorted(tube_fams))
    z_anode = physics.table.atomic_number(anode)
    out = []
    for el, idx in _fitted_elements(used, anode).items():
        main = max(idx, key=lambda i: used[i][0].strength)
        w = width(_line_peak(obs, used[main][1]), used[main][0].keV, used[main][0])
        if w is None or w <= SWAP_WIDTH_RATIO * max(tube_w):
            continue
        fams = _own_families(used, idx)
        role = "/".join(sorted(fams))
        if not anode_idx:  # no fitted line of the anode's to read as another's
            fit = _reread(used, gain, n, idx, anode, fams, tube_kv, anode, tube=tube)
            if fit is not None:
                out.append((f"{anode} {role} for {el} {role}", *fit))
            continue
        # Moseley: the third element lies as far above the anode as the element below it
        z_mid = 2 * z_anode - physics.table.atomic_number(el)
        for z in range(max(11, z_mid - NEIGHBOUR_REACH), min(92, z_mid + NEIGHBOUR_REACH) + 1):
            other = physics.normalize_element(z)
            if other in (anode, el) or other in NO_SAMPLE_ELEMENTS:
                continue
            fit = _reread(used, gain, n, idx, anode, fams, tube_kv, anode, also=(anode_idx, other, tube_fams),
                          tube=tube)
            if fit is not None:
                name = f"{anode} {role} for {el} {role}, {other} {tube_role} for {anode} {tube_role}"
                out.append((name, *fit))
    return sorted(out, key=lambda t: t[4])


def _tube_peak(obs: Sequence[_Obs], axis: tuple[float, float], ref: _Ref) -> _Obs | None:
    """The strongest well-fitted peak (30 sigma or more) where the ``axis`` (gain, offset)
    puts the anode's line ``ref``: within half its FWHM, and the reference's tolerance (a
    scatter blend's maximum wanders with the angle), of it; None when there is none. A
    peak the fit of its top did not describe is left out: the shoulders of a broad Cu
    K-alpha blend fitted 80 eV wide passed for the tube's line (dev 1030089)."""
    gain, offset = axis
    c = (ref.keV - offset) / gain
    near = [q for q in obs if q.ok and q.significance >= 30
            and abs(q.channel - c) <= 0.5 * q.fwhm + ref.tol_keV / gain]
    return max(near, key=lambda q: q.significance) if near else None


def neighbour_axes(
    entries: Sequence[Entry], gain: float, n: int, anode: str, tube_kv: float
) -> list[tuple[str, float, float, float, float]]:
    """The readings of a fitted element's lines as a neighbour's of the same role (Z
    within :data:`NEIGHBOUR_REACH`) that fit the fitted peaks as well: Ag K-beta read as
    Cd's at a gain 5.7 % higher, which soft tube blends (Cr K) absorb.

    Returns
    -------
    list of (name, gain_keV, offset_keV, shift_eV, rms_eV)
        ``name`` as ``'Cd K for Ag K'``; as :func:`rival_axes`. Best fitting first.
    """
    used = [(r, c, err) for r, c, err, u in entries if u]
    if len(used) < 3:
        return []
    out = []
    for el, idx in _fitted_elements(used, anode).items():
        fams = _own_families(used, idx)
        role = "/".join(sorted(fams))
        z0 = physics.table.atomic_number(el)
        for z in range(max(11, z0 - NEIGHBOUR_REACH), min(92, z0 + NEIGHBOUR_REACH) + 1):
            other = physics.normalize_element(z)
            if z == z0 or other == anode or other in NO_SAMPLE_ELEMENTS:
                continue
            fit = _reread(used, gain, n, idx, other, fams, tube_kv, anode)
            if fit is not None and _tube_lines_hold(entries, fit[:2], anode):
                out.append((f"{other} {role} for {el} {role}", *fit))
    return sorted(out, key=lambda t: t[4])


def _tube_lines_hold(entries: Sequence[Entry], axis: tuple[float, float], anode: str) -> bool:
    """Whether the tube's lines the fit found (used or not) stay on their places under a
    rival ``axis``: zero, K-alpha and K-beta of one element and its neighbour differ by
    a mere scale (Moseley), so only the tube's lines, known whatever the sample, can tell
    such readings apart."""
    g1, o1 = axis
    for ref, ch, _err, _used in entries:
        if not _is_anode(ref, anode) or ref.kind == "escape":
            continue
        tol = RIVAL_FWHM_FRACTION * float(_fwhm_at(ref.keV)) + ref.tol_keV
        if abs(o1 + g1 * ch - ref.keV) > tol:
            return False
    return True


def _rival_fit(
    c: np.ndarray, kev: np.ndarray, s: np.ndarray, pinned: np.ndarray, lines: np.ndarray
) -> tuple[float, float, float] | None:
    """The axis through fitted peaks at channels ``c`` on lines ``kev`` (keV, known to
    ``s``), each peak not ``pinned`` read as its own line or the nearest of the rival's
    ``lines``, whichever is nearer under the axis of the pinned ones (of all, when fewer
    than two pinned channels differ): (gain, offset, rms residual eV), or None when a
    peak lands beyond its tolerance."""
    kev = kev.copy()
    base = pinned if np.ptp(c[pinned]) > 0 else np.ones_like(pinned)
    g1, o1 = fit_axis(c[base], kev[base], s[base])
    for i in np.flatnonzero(~pinned):
        e = o1 + g1 * c[i]
        near = float(lines[int(np.argmin(np.abs(lines - e)))]) if lines.size else kev[i]
        kev[i] = near if abs(near - e) < abs(kev[i] - e) else kev[i]
    g1, o1 = fit_axis(c, kev, s)
    res = (o1 + g1 * c - kev) * 1e3
    tol = np.maximum(np.maximum(RESIDUAL_TOL_EV, 3.0 * s * 1e3), RIVAL_FWHM_FRACTION * 1e3 * _fwhm_at(kev))
    if np.any(np.abs(res) > tol):
        return None
    return g1, o1, float(np.sqrt(np.mean(res**2)))
