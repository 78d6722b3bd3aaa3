"""Reference lines of the automatic calibration (step 2 of :func:`auto_calibrate`).

The zero peak, the anode's lines as the Rayleigh scatter shows them (less those blended
with their Compton peak) and the K and L lines of elements common in artworks, with the
components of a line group closer than a detector FWHM merged into one line (:class:`_Ref`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from maxrf import physics
from maxrf.physics import compton_shift

#: elements whose K lines serve as references (common in artworks and standards)
K_ELEMENTS: tuple[str, ...] = (
    "Si", "P", "S", "Cl", "Ar", "K", "Ca", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "As", "Se", "Br", "Rb", "Sr", "Zr", "Mo", "Ag", "Cd", "Sn", "Sb", "Ba",
)  # fmt: skip
#: elements whose L lines serve as references
L_ELEMENTS: tuple[str, ...] = (
    "Sr", "Zr", "Mo", "Ag", "Cd", "Sn", "Sb", "Ba", "W", "Pt", "Au", "Hg", "Pb", "Bi",
)  # fmt: skip

#: weakest line (relative to its family's strongest) fitted beside a scatter blend
MINOR_MIN_STRENGTH = 0.01

_FWHM6_DEFAULT = physics.DEFAULT_FWHM_KEV  # for tolerances before the resolution is measured
#: narrowest detector resolution (keV FWHM at 5.9 keV) the width tests assume: just above
#: silicon's Fano limit
_FWHM6_FLOOR = 0.121
# systematic uncertainty (keV) of a reference centroid by line kind
_SYS_KEV = {"zero": 0.0015, "Ka": 0.002, "Kb": 0.004, "La": 0.005, "anode": 0.008, "other": 0.010}


@dataclass(frozen=True)
class _Ref:
    """A reference line as the detector sees it (components merged within a FWHM)."""

    name: str  # 'Fe Ka', 'Rh Kb', 'zero'
    element: str | None
    group: str  # 'Ka', 'Kb', 'La', 'Lb', ..., 'zero'
    family: str  # 'K', 'L', 'M', 'zero'
    keV: float  # intensity-weighted energy of the components
    components: tuple[tuple[float, float], ...]  # (keV, relative intensity)
    strength: float  # relative to the strongest line of its family (1)
    kind: str  # 'zero' | 'anode' | 'element'
    fprimary: bool  # strongest line of its family (K-alpha, L-alpha)
    primary: bool  # the element's main line (K-alpha, or L-alpha when K is not excited)
    anchor: bool  # may generate hypotheses
    sys_keV: float  # systematic uncertainty of its centroid
    tol_keV: float = 0.0  # extra match tolerance (keV): the spread of a scatter blend's maximum
    #: the family's lines too weak to be references (keV; on its strongest line only): fitted
    #: beside a scatter blend they overlap all the same (Au L-l, 5 % of L-alpha, 0.1 keV
    #: above W L-alpha, pulled that Rayleigh line 65 eV off a right axis; dev 400004)
    minor_keV: tuple[float, ...] = ()
    #: their strengths, on the scale of :attr:`strength` (the family's strongest line's
    #: components together are 1)
    minor_strength: tuple[float, ...] = ()
    # FWHM (keV) the spread of the components adds, derived once (the width tests of every
    # match ask it of every line)
    spread_keV: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        e = np.array([c[0] for c in self.components])
        w = np.array([c[1] for c in self.components])
        mean = float(np.sum(w * e) / np.sum(w))
        spread = physics.FWHM_PER_SIGMA * float(np.sqrt(np.sum(w * (e - mean) ** 2) / np.sum(w)))
        object.__setattr__(self, "spread_keV", spread)


_ZERO = _Ref(
    "zero",
    None,
    "zero",
    "zero",
    0.0,
    ((0.0, 1.0),),
    1.0,
    "zero",
    True,
    True,
    True,
    _SYS_KEV["zero"],
)


def _cluster_fwhm(ref: _Ref) -> float:
    """FWHM (keV) added by the spread of a reference line's components (weighted)."""
    return ref.spread_keV


def lines_keV(refs: Sequence[_Ref]) -> list[float]:
    """Energies (keV) of reference lines and of their families' lines too weak to be
    references (:attr:`_Ref.minor_keV`): every line a window fit beside them must model."""
    return [r.keV for r in refs] + [e for r in refs for e in r.minor_keV]


def line_components(refs: Sequence[_Ref]) -> list[tuple[tuple[float, float], ...]]:
    """The lines of :func:`lines_keV` as their components ``(keV, relative intensity)``:
    a reference line's tabulated components (K-alpha1,2...), and each line too weak to
    be a reference alone."""
    return [r.components for r in refs] + [((float(e), 1.0),) for r in refs for e in r.minor_keV]


def trace_groups(refs: Sequence[_Ref], present: set[str]) -> tuple[tuple[float, ...], ...]:
    """Energies (keV) of the reference lines of each line family (K, L) of the elements
    not in ``present``, its strongest line first: the trace lines a scatter blend's fit
    may need (``traces`` of :func:`maxrf.calibration.scatter_fit.fit_rayleigh`)."""
    by_family: dict[tuple[str | None, str], list[_Ref]] = {}
    for r in refs:
        if r.kind == "element" and r.element not in present:
            by_family.setdefault((r.element, r.family), []).append(r)
    return tuple(tuple(lines_keV(sorted(g, key=lambda r: -r.strength))) for g in by_family.values())


def components_within(a: _Ref, b: _Ref, keV: float) -> bool:
    """Whether a component of line ``a`` lies within ``keV`` of one of line ``b``'s (their
    peaks blend when ``keV`` is the detector's FWHM there)."""
    ea = np.array([c[0] for c in a.components])
    eb = np.array([c[0] for c in b.components])
    return bool(np.min(np.abs(ea[:, None] - eb[None, :])) < keV)


def _group_name(siegbahn: str) -> str:
    """'Ka1' -> 'Ka', 'Lb2,15' -> 'Lb2', 'Kb1' -> 'Kb', 'Ma' -> 'Ma'."""
    name = siegbahn.split(",")[0]
    if name.endswith("1") and len(name) == 3:
        name = name[:2]
    return name


def _group_key(siegbahn: str) -> str:
    """Lines that blend into one peak share a key: 'Ka1', 'Ka2' -> 'Ka'; 'Kb1', 'Kb3',
    'Kb5' -> 'Kb'; 'Kb2', 'Kb4' -> 'Kb2'; L and M lines by their first two letters."""
    name = siegbahn.split(",")[0]
    if name.startswith("Kb"):
        return "Kb2" if name[2:3] in ("2", "4") else "Kb"
    return name[:2]


def _cluster_lines(
    lines: Sequence[physics.Line], fwhm6: float, chained: bool = True
) -> list[list[physics.Line]]:
    """Lines of the same group (K-alpha1,2; K-beta1,3...) closer than one detector FWHM,
    chained in energy order; unless ``chained``, within one FWHM of the cluster's first
    line (a chain of lines each a FWHM from the next spans several: Ag L-beta1 to
    L-beta2, 197 eV at 3.3 keV, where the detector shows two peaks; their centroid, 3.20
    keV, fell on Ar K-beta, and air's Ar K pair passed for Ag L-alpha and L-beta)."""
    ordered = sorted(lines, key=lambda ln: (_group_key(ln.siegbahn), ln.energy_keV))
    clusters: list[list[physics.Line]] = []
    for ln in ordered:
        if clusters:
            last = clusters[-1][-1]
            width = float(physics.fwhm_keV(ln.energy_keV, fwhm6))
            same = _group_key(ln.siegbahn) == _group_key(last.siegbahn)
            if same and ln.energy_keV - (last if chained else clusters[-1][0]).energy_keV < width:
                clusters[-1].append(ln)
                continue
        clusters.append([ln])
    clusters.sort(key=lambda c: c[0].energy_keV)
    return clusters


def _family_refs(
    element: str,
    lines: Sequence[physics.Line],
    kind: str,
    min_strength: float,
    main_family: bool,
    anchors: tuple[str, ...],
) -> list[_Ref]:
    """Reference lines of one family (K, L or M) of an element."""
    out: list[_Ref] = []
    # the tube's lines keep their chained groups: the scatter fits and checks of a W
    # tube's L-beta blend are built on them
    clusters = _cluster_lines(lines, _FWHM6_DEFAULT, chained=kind == "anode")
    if not clusters:
        return out
    total = [sum(ln.rel_intensity for ln in c) for c in clusters]
    top = max(total)
    minor = [ln for c, t in zip(clusters, total) if t < min_strength * top for ln in c
             if ln.rel_intensity >= MINOR_MIN_STRENGTH * top]
    for c, t in zip(clusters, total):
        strength = t / top if top > 0 else 0.0
        if strength < min_strength:
            continue
        strongest = max(c, key=lambda ln: ln.rel_intensity)
        group = _group_name(strongest.siegbahn)
        w = np.array([ln.rel_intensity for ln in c])
        e = np.array([ln.energy_keV for ln in c])
        fprimary = t == top
        sys = _SYS_KEV.get(group, _SYS_KEV["other"])
        if kind == "anode":  # scattered tube lines: Compton tail, scattering shape
            sys = max(sys, _SYS_KEV["anode"] if group == "Ka" else 1.5 * _SYS_KEV["other"])
        out.append(
            _Ref(
                name=f"{element} {group}",
                element=element,
                group=group,
                family=c[0].family,
                keV=float(np.sum(w * e) / np.sum(w)),
                components=tuple((float(ln.energy_keV), float(ln.rel_intensity)) for ln in c),
                strength=float(strength),
                kind=kind,
                fprimary=fprimary,
                primary=fprimary and main_family,
                anchor=(fprimary and main_family) or group in anchors,
                sys_keV=sys,
                minor_keV=tuple(float(ln.energy_keV) for ln in minor) if fprimary else (),
                minor_strength=tuple(float(ln.rel_intensity / top) for ln in minor) if fprimary else (),
            )
        )
    return out


def anode_main_line(anode: str, tube_kv: float) -> physics.Line | None:
    """The anode's strongest scattered line: of its K lines when the voltage excites
    them (the soft L lines die in filters and air), else of its L lines; None when it has
    neither."""
    lines = physics.anode_lines(anode, tube_kv)
    fam = "K" if any(ln.family == "K" for ln in lines) else "L"
    return max((ln for ln in lines if ln.family == fam), key=lambda ln: ln.rel_intensity, default=None)


#: least strength (relative to the family's strongest line) of the anode's lines that are
#: references, by family. Rh, Mo and Ag K-beta2 (3 % of the K lines, 0.35-0.5 keV above
#: K-beta1) is a peak of its own in a blank of a million counts: not a reference, it was
#: read as Cd K-alpha (23.17 keV beside Rh K-beta2 at 23.17), whose K-alpha2 component then
#: pulled Rh K-beta 7 eV off in its window fit (noise-free; dev seed 500543: 105 eV off
#: over 2-20 keV from the true axis; 5 with K-beta2 fitted beside K-beta at its tabulated
#: intensity, :func:`maxrf.calibration.precise._companion`)
ANODE_MIN_STRENGTH = {"K": 0.025}
#: least strength of an anode line whose fitted centre enters the axis fit: weaker ones
#: (K-beta2) are matched and fitted beside their neighbours only. A lone K-beta2 fit lands
#: 30-80 eV off on its own in low-count blanks (on the flank of K-beta; dev 500237, 500346)
ANODE_USED_STRENGTH = 0.04


def fitted_beside_only(ref: _Ref) -> bool:
    """Whether ``ref`` is a tube line too weak to anchor the axis (K-beta2): matched and
    fitted beside its neighbours, never an entry of the axis fit
    (:data:`ANODE_USED_STRENGTH`)."""
    return ref.kind == "anode" and ref.strength < ANODE_USED_STRENGTH


@functools.lru_cache(maxsize=64)
def _reference_lines(anode: str, tube_kv: float) -> tuple[_Ref, ...]:
    """Zero peak, anode lines and common element lines, sorted by energy."""
    refs: list[_Ref] = [_ZERO]
    lines = physics.anode_lines(anode, tube_kv)
    fams = [f for f in ("K", "L", "M") if any(ln.family == f for ln in lines)]
    for f in fams:
        fam_lines = [ln for ln in lines if ln.family == f]
        least = ANODE_MIN_STRENGTH.get(f, ANODE_USED_STRENGTH)
        fam = _family_refs(anode, fam_lines, "anode", least, f == fams[0], ("Ka", "Kb", "La", "Lb"))
        # a scattered line whose Compton peak half overlaps it has no usable centre: the
        # blend is matched as such (a wide tolerance), its Rayleigh line measured later.
        # Of the main family only: the soft L lines of a K anode have Compton partners
        # some 45 times weaker (cellulose at 3 keV) and stay lines of their own; left out,
        # an Ag tube's L-beta1 (3.15 keV) was read as Cd L-alpha (3.13), 14-24 eV off
        # (dev 1000275, 1000063)
        main = f == fams[0]
        fam = [_scatter_blend(r) if main and _compton_blended(r.keV) else r for r in fam]
        refs += fam
        if main:
            refs += [_escape_ref(r) for r in fam
                     if r.strength >= 0.1 and physics.escape_fraction(r.keV) >= ESCAPE_MIN_FRACTION]
    for el in dict.fromkeys(K_ELEMENTS + L_ELEMENTS):
        if el == anode:  # its usable lines are the anode's (scatter hides the others)
            continue
        lines = physics.element_lines(el, tube_kv, min_keV=0.9, min_rel=0.005)
        fams = (["K"] if el in K_ELEMENTS else []) + (["L"] if el in L_ELEMENTS else [])
        fams = [f for f in fams if any(ln.family == f for ln in lines)]
        for f in fams:
            fam_lines = [ln for ln in lines if ln.family == f]
            refs += _family_refs(el, fam_lines, "element", 0.05, f == fams[0], ())
    refs.sort(key=lambda r: r.keV)
    return tuple(refs)


#: the tube lines whose escape peaks are references: those that lose at least this
#: fraction of their photons to the Si escape (Cr K, Cu K-alpha; not the 8-25 keV lines of
#: W L and Mo/Rh/Ag K, whose escapes are too weak to see and would only match chance peaks)
ESCAPE_MIN_FRACTION = 0.0015


def _escape_ref(ref: _Ref) -> _Ref:
    """The Si escape peak of a scattered anode line (kind ``'escape'``): the line less the
    Si K-alpha energy, as wide as its parent (a scatter blend's escape is a blend too).

    The tube's lines are the strongest peaks of a blank, their escape peaks the most
    common strong peaks no fluorescence line explains (Cr K-alpha's at 3.6 keV passes for
    Sb L-alpha and bends the axis); their spacing from the parent is fixed by physics,
    whatever the blend's shape.
    """
    return replace(
        ref,
        name=f"{ref.name} escape",
        group=f"{ref.group} escape",
        family="escape",
        keV=float(physics.escape_energy(ref.keV)),
        kind="escape",
        fprimary=False,
        primary=False,
        anchor=ref.fprimary,
        sys_keV=ref.sys_keV + 0.003,
    )


def _compton_blended(keV: float) -> bool:
    """Whether the Compton peak of a scattered line at ``keV`` overlaps it so much that
    the observed peak centre is shifted (shift at a typical 105-degree geometry between
    0.2 and 2.5 detector FWHM): such anode lines cannot anchor a calibration."""
    shift = keV - float(compton_shift(keV, 105.0))
    ratio = shift / float(physics.fwhm_keV(keV, _FWHM6_DEFAULT))
    return 0.2 < ratio < 2.5


#: geometries of the blend maxima a scatter reference spans: scattering angle (degrees)
#: and Compton-to-Rayleigh area ratio (scatter of light matrices: paper, acrylic, air)
_BLEND_THETA = (80.0, 100.0, 120.0, 140.0, 160.0)
_BLEND_RATIO = (0.5, 1.0, 2.0, 4.0, 10.0)


def _scatter_blend(ref: _Ref) -> _Ref:
    """The peak an anode line makes with its own Compton peak (kind ``'scatter'``): at the
    middle of the energies its maximum takes over plausible geometries and matrices, with
    half that span as extra tolerance. Its components stay the Rayleigh line's."""
    c = np.array([x[0] for x in ref.components])
    a = np.array([x[1] for x in ref.components])
    a = a / a.sum()
    fw = float(physics.fwhm_keV(ref.keV, _FWHM6_DEFAULT))
    e = np.linspace(float(compton_shift(c.min(), 180.0)) - fw, c.max() + fw, 600)
    tops = []
    for theta in _BLEND_THETA:
        cc = np.asarray(compton_shift(c, theta))
        wc = np.hypot(physics.fwhm_keV(cc, _FWHM6_DEFAULT), physics.compton_extra_fwhm(c, theta))
        ray = physics.gaussian_peaks(e, c, a, physics.fwhm_keV(c, _FWHM6_DEFAULT))
        com = physics.gaussian_peaks(e, cc, a, wc)
        tops += [float(e[np.argmax(ray + k * com)]) for k in _BLEND_RATIO]
    lo, hi = min(tops), max(tops)
    return replace(
        ref,
        name=f"{ref.name} scatter",
        keV=0.5 * (lo + hi),
        kind="scatter",
        sys_keV=max(ref.sys_keV, 0.25 * (hi - lo)),
        tol_keV=0.5 * (hi - lo),
    )


def _rayleigh_keV(ref: _Ref) -> float:
    """Intensity-weighted energy (keV) of a reference's components (for a scatter blend:
    its Rayleigh line)."""
    w = np.array([x[1] for x in ref.components])
    return float(np.sum(w * np.array([x[0] for x in ref.components])) / np.sum(w))


def _anode_main(refs: Sequence[_Ref]) -> _Ref | None:
    """The anode's main Rayleigh line (K-alpha, or L-alpha), or its blend with its Compton
    peak (kind ``'scatter'``, see :func:`_compton_blended`)."""
    anode = [r for r in refs if r.kind in ("anode", "scatter")]
    for r in anode:
        if r.primary:
            return r
    return None
