"""Energy calibration: channel numbers -> keV, from the spectra themselves or by hand.

A Bruker M6 ``.rpl`` carries no energy calibration. :func:`auto_calibrate` finds the
linear calibration ``E(channel) = offset_keV + gain_keV * channel`` from the peaks of a
sum (and optionally max) spectrum; :func:`manual_calibration` and
:func:`range_calibration` set it by hand and override it (:func:`calibrate` dispatches).

Algorithm of :func:`auto_calibrate`
-----------------------------------
1. **Peaks.** In each spectrum (sum, and max when given): SNIP baseline, noise scale,
   significant peaks, Gaussian centres and widths (:mod:`maxrf.peaks`). A strong peak cut
   by the start of the axis (the zero peak of an axis starting at 0 keV) is fitted on its
   visible flank.
2. **Reference lines** (:mod:`maxrf.physics`): the zero (noise) peak at 0 keV; the anode's
   lines as the Rayleigh scatter shows them -- except lines whose Compton peak half overlaps
   them (W L, Cr K, Cu K at usual angles), which have no usable centre; the K and L line
   groups of elements common in artworks and standards. Lines of one group (K-alpha1,2...)
   closer than a detector FWHM merge into one intensity-weighted line.
3. **Hypotheses.** Every pair of the strongest peaks matched to every pair of anchor lines
   (zero, anode lines, element K-alpha / L-alpha) gives a gain and an offset within
   ``gain_range`` and ``offset_range``. Widths must be possible for the line they are put
   on (silicon's Fano limit, a poor detector's FWHM): the narrow zero peak cannot pose as
   a fluorescence line, nor the broad Compton peak as a Rayleigh line.
4. **Scores.** Each hypothesis is refined by robust weighted least squares on the peaks it
   puts near a line. A match earns ``sqrt(significance)`` times a *verification*: how well
   the other matches predict it (leave-one-out residual, relative to the match tolerance),
   so two arbitrary peaks fitted exactly by two lines earn nothing. Chemistry: a K-beta
   (L-beta...) line counts only with its stronger K-alpha (L-alpha); a strong main line
   whose companion is missing is refuted. Physics: peak widths must follow one detector
   resolution growing with energy at the Fano rate; a zero peak whose width fits that
   resolution is verified. The anode's main line earns a bonus when found with its broad
   Compton partner below it and its K-beta above; when some hypotheses find that pattern,
   the others are dropped unless far better.
5. **Refinement.** The winner's matched peaks are re-fitted with every line component of
   the elements present in their window (K-alpha1/2, Rh L-alpha with its L-beta shoulder),
   widths from the detector model and a quadratic background (the Rayleigh peak sits on the
   Compton tail). Weighted least squares on those centres (zero peak, anode lines and
   peaks of at least 30 sigma), with outlier rejection, gives gain and offset; each peak's
   residual is reported.
6. **Scattering angle.** The Compton peak of the anode's main line is located between its
   180-degree limit and the Rayleigh peak; :func:`maxrf.physics.detector_angle` turns its
   energy into the scattering angle. The Compton peak never enters the gain (its energy
   depends on the unknown angle and it is broad and asymmetric).

Limits: with a single element, no zero peak on the axis and a weak or Compton-blended
anode line (W, Cr, Cu anodes; or an axis starting above 0 keV), element lines can be
confused with their neighbours in the periodic table (K lines scale with Z); give a manual
calibration or an energy range then.

What ``plot_calibration`` needs: a :class:`Calibration` (``peaks`` carries name, channel,
reference energy, residual and whether each peak was used) and the spectrum.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from maxrf import peaks as _peaks
from maxrf import physics
from maxrf.errors import CalibrationError, ParameterError
from maxrf.physics import compton_shift, detector_angle

__all__ = [
    "Calibration",
    "CalibrationPeak",
    "auto_calibrate",
    "calibrate",
    "compton_shift",
    "detector_angle",
    "header_calibration",
    "manual_calibration",
    "parse_manual",
    "parse_range",
    "range_calibration",
]

#: plausible detector gains (keV per channel)
GAIN_RANGE: tuple[float, float] = (0.004, 0.05)
#: plausible energy of channel 0 (keV)
OFFSET_RANGE: tuple[float, float] = (-5.0, 5.0)
#: elements whose K lines serve as references (common in artworks and standards)
K_ELEMENTS: tuple[str, ...] = (
    "Si", "P", "S", "Cl", "Ar", "K", "Ca", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "As", "Se", "Br", "Rb", "Sr", "Zr", "Mo", "Ag", "Cd", "Sn", "Sb", "Ba",
)  # fmt: skip
#: elements whose L lines serve as references
L_ELEMENTS: tuple[str, ...] = (
    "Sr", "Zr", "Mo", "Ag", "Cd", "Sn", "Sb", "Ba", "W", "Pt", "Au", "Hg", "Pb", "Bi",
)  # fmt: skip

_FWHM6_DEFAULT = 0.145  # keV at 5.9 keV, for tolerances before the resolution is measured
_SMOOTH_NOISE = 0.53  # noise left after a Gaussian smoothing of 1 channel: 1/sqrt(2 sqrt(pi))
_FWHM6_RANGE = (0.10, 0.26)  # plausible detector resolution (keV at 5.9 keV)
# systematic uncertainty (keV) of a reference centroid by line kind
_SYS_KEV = {"zero": 0.0015, "Ka": 0.002, "Kb": 0.004, "La": 0.005, "anode": 0.008, "other": 0.010}


# =============================================================================== results


@dataclass
class CalibrationPeak:
    """One peak used (or checked) in a calibration.

    Attributes
    ----------
    name : str
        Line name: ``'zero'``, ``'Rh Ka'``, ``'Fe Kb'``, ``'manual 1'``...
    channel : float
        Fitted peak centre (channels, sub-channel precision).
    keV : float
        Reference energy of the line (keV).
    residual_eV : float
        Calibrated energy of ``channel`` minus ``keV`` (eV).
    used : bool
        Whether the peak entered the gain/offset fit (False: rejected as outlier or only
        checked, like the Compton peak).
    kind : str
        ``'zero'``, ``'anode'`` (Rayleigh scatter of a tube line), ``'element'``,
        ``'compton'`` or ``'manual'``.
    """

    name: str
    channel: float
    keV: float
    residual_eV: float
    used: bool = True
    kind: str = "element"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "name": str(self.name),
            "channel": float(self.channel),
            "keV": float(self.keV),
            "residual_eV": float(self.residual_eV),
            "used": bool(self.used),
            "kind": str(self.kind),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CalibrationPeak:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            channel=float(d["channel"]),
            keV=float(d["keV"]),
            residual_eV=float(d.get("residual_eV", 0.0)),
            used=bool(d.get("used", True)),
            kind=str(d.get("kind", "element")),
        )


@dataclass
class Calibration:
    """A linear energy calibration ``E = offset_keV + gain_keV * channel``.

    Attributes
    ----------
    gain_keV : float
        Energy width of a channel (keV per channel).
    offset_keV : float
        Energy of channel 0 (keV).
    peaks : list of CalibrationPeak
        Peaks the calibration rests on, with residuals (empty for a range calibration).
    method : str
        ``'auto'``, ``'manual'``, ``'range'`` or ``'header'``.
    anode : str or None
        Tube anode assumed (auto).
    tube_kv : float or None
        Tube voltage assumed (kV).
    theta_deg : float or None
        Scattering angle (degrees) from the Compton peak, when found.
    compton_keV : float or None
        Energy of the Compton peak of the anode's main line (keV), when found.
    quality : dict
        Diagnostics of the automatic search (score, runner-up score, rms residual in eV,
        detector FWHM at 5.9 keV in keV...).
    """

    gain_keV: float
    offset_keV: float
    peaks: list[CalibrationPeak] = field(default_factory=list)
    method: str = "auto"
    anode: str | None = None
    tube_kv: float | None = None
    theta_deg: float | None = None
    compton_keV: float | None = None
    quality: dict[str, Any] = field(default_factory=dict)

    def energies(self, n_channels: int) -> np.ndarray:
        """Energy (keV) of channels ``0 .. n_channels - 1`` (float64)."""
        n = int(n_channels)
        if n < 0:
            raise ParameterError(f"n_channels must be >= 0, got {n_channels!r}")
        return self.offset_keV + self.gain_keV * np.arange(n, dtype=np.float64)

    def energy(self, channel: float | np.ndarray) -> float | np.ndarray:
        """Energy (keV) of a (fractional) channel."""
        out = self.offset_keV + self.gain_keV * np.asarray(channel, dtype=np.float64)
        return float(out) if out.ndim == 0 else out

    def channel(self, keV: float | np.ndarray) -> float | np.ndarray:
        """Fractional channel of an energy (keV)."""
        out = (np.asarray(keV, dtype=np.float64) - self.offset_keV) / self.gain_keV
        return float(out) if out.ndim == 0 else out

    @property
    def calibration(self) -> tuple[float, float]:
        """``(gain_keV, offset_keV)`` as :class:`maxrf.io.ripple.RippleHeader` has it."""
        return (float(self.gain_keV), float(self.offset_keV))

    @property
    def rms_eV(self) -> float | None:
        """Root-mean-square residual (eV) of the peaks used, or None."""
        res = [p.residual_eV for p in self.peaks if p.used]
        return float(np.sqrt(np.mean(np.square(res)))) if res else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (also the ``calibration`` layer attrs of a datastack)."""
        return {
            "gain_keV": float(self.gain_keV),
            "offset_keV": float(self.offset_keV),
            "method": str(self.method),
            "source": str(self.method),
            "anode": self.anode,
            "tube_kv": None if self.tube_kv is None else float(self.tube_kv),
            "theta_deg": None if self.theta_deg is None else float(self.theta_deg),
            "compton_keV": None if self.compton_keV is None else float(self.compton_keV),
            "peaks": [p.to_dict() for p in self.peaks],
            "quality": _json_safe(self.quality),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict` (``'source'`` is accepted for ``'method'``)."""
        try:
            gain = float(d["gain_keV"])
            offset = float(d["offset_keV"])
        except (KeyError, TypeError, ValueError):
            raise CalibrationError("calibration dict needs numeric 'gain_keV' and 'offset_keV'") from None
        _check_gain(gain, "gain_keV")

        def opt(key: str) -> float | None:
            v = d.get(key)
            return None if v is None else float(v)

        return cls(
            gain_keV=gain,
            offset_keV=offset,
            peaks=[CalibrationPeak.from_dict(p) for p in d.get("peaks") or []],
            method=str(d.get("method", d.get("source", "auto"))),
            anode=d.get("anode"),
            tube_kv=opt("tube_kv"),
            theta_deg=opt("theta_deg"),
            compton_keV=opt("compton_keV"),
            quality=dict(d.get("quality") or {}),
        )


def _json_safe(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def _check_gain(gain: float, what: str) -> None:
    if not (math.isfinite(gain) and gain > 0):
        raise CalibrationError(f"{what} must be a positive energy per channel, got {gain!r}")


# ================================================================ manual / range / header


def manual_calibration(pairs: Sequence[tuple[float, float]] | str) -> Calibration:
    """Calibration through (channel, keV) pairs, e.g. two peaks identified by eye.

    Parameters
    ----------
    pairs : sequence of (channel, keV) or str
        At least two pairs with distinct channels (a string is parsed by
        :func:`parse_manual`). With more than two pairs the line is a least-squares fit.

    Returns
    -------
    Calibration
        ``method='manual'``; each pair is a peak with its residual.

    Raises
    ------
    CalibrationError
        Fewer than two pairs, non-numeric values, equal channels or a non-positive gain.
    """
    if isinstance(pairs, str):
        pairs = parse_manual(pairs)
    try:
        arr = np.array([(float(c), float(e)) for c, e in pairs], dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"manual calibration needs (channel, keV) number pairs, got {pairs!r}"
        ) from None
    if arr.shape[0] < 2:
        raise CalibrationError(
            f"manual calibration needs at least two (channel, keV) pairs, got {arr.shape[0]}"
        )
    if not np.all(np.isfinite(arr)):
        raise CalibrationError("manual calibration values must be finite numbers")
    ch, kev = arr[:, 0], arr[:, 1]
    if np.ptp(ch) == 0 or np.unique(ch).size < ch.size:
        raise CalibrationError(f"manual calibration channels must differ, got {ch.tolist()}")
    gain, offset = np.polyfit(ch, kev, 1)
    if not gain > 0:
        raise CalibrationError(
            "manual calibration gives a non-positive gain: energies must increase with "
            f"channel, got {[(float(c), float(e)) for c, e in arr]}"
        )
    peaks = [
        CalibrationPeak(
            name=f"manual {i + 1}",
            channel=float(c),
            keV=float(e),
            residual_eV=float((offset + gain * c - e) * 1e3),
            kind="manual",
        )
        for i, (c, e) in enumerate(arr)
    ]
    return Calibration(float(gain), float(offset), peaks, method="manual")


def range_calibration(start_keV: float, stop_keV: float, n_channels: int) -> Calibration:
    """Calibration from the energies of the first and last channel.

    ``energies = numpy.linspace(start_keV, stop_keV, n_channels)``.

    Parameters
    ----------
    start_keV, stop_keV : float
        Energy of channel 0 and of channel ``n_channels - 1`` (keV); ``stop > start``.
    n_channels : int
        Number of channels (>= 2).

    Returns
    -------
    Calibration
        ``method='range'``.

    Raises
    ------
    CalibrationError
        Non-numeric or non-increasing energies, fewer than two channels.
    """
    try:
        start, stop = float(start_keV), float(stop_keV)
        n = int(n_channels)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"range calibration needs numbers, got {start_keV!r}, {stop_keV!r}, {n_channels!r}"
        ) from None
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise CalibrationError("range calibration energies must be finite")
    if n < 2:
        raise CalibrationError(f"range calibration needs at least 2 channels, got {n}")
    if not stop > start:
        raise CalibrationError(f"range calibration stop ({stop} keV) must be above start ({start} keV)")
    gain = (stop - start) / (n - 1)
    return Calibration(gain, start, [], method="range")


def header_calibration(gain_keV: float, offset_keV: float) -> Calibration:
    """Calibration taken from a file header (``method='header'``).

    Parameters
    ----------
    gain_keV : float
        keV per channel (> 0).
    offset_keV : float
        Energy of channel 0 (keV).
    """
    try:
        gain, offset = float(gain_keV), float(offset_keV)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"header calibration needs numbers, got {gain_keV!r}, {offset_keV!r}"
        ) from None
    _check_gain(gain, "gain_keV")
    if not math.isfinite(offset):
        raise CalibrationError(f"offset_keV must be finite, got {offset_keV!r}")
    return Calibration(gain, offset, [], method="header")


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_manual(text: str) -> list[tuple[float, float]]:
    """Parse ``"CH1:KEV1,CH2:KEV2[,...]"`` (CLI ``--calibration``) into pairs.

    Pairs are separated by ``,`` or ``;``, channel and energy by ``:`` or ``=``; spaces
    are ignored. Example: ``"212:1.740,736:6.400"``.

    Returns
    -------
    list of (float, float)
        (channel, keV) pairs; at least two, channels distinct.

    Raises
    ------
    CalibrationError
        The string does not have that form.
    """
    if not isinstance(text, str) or not text.strip():
        raise CalibrationError(
            f"manual calibration {text!r}: expected 'CH1:KEV1,CH2:KEV2' (e.g. '212:1.74,736:6.4')"
        )
    pairs: list[tuple[float, float]] = []
    for part in re.split(r"[,;]", text):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(rf"\s*({_NUM})\s*[:=]\s*({_NUM})\s*", part)
        if m is None:
            raise CalibrationError(
                f"manual calibration {text!r}: cannot read {part!r} as CHANNEL:KEV "
                "(expected 'CH1:KEV1,CH2:KEV2', e.g. '212:1.74,736:6.4')"
            )
        pairs.append((float(m.group(1)), float(m.group(2))))
    if len(pairs) < 2:
        raise CalibrationError(
            f"manual calibration {text!r}: needs at least two CHANNEL:KEV pairs, got {len(pairs)}"
        )
    chans = [c for c, _ in pairs]
    if len(set(chans)) < len(chans):
        raise CalibrationError(f"manual calibration {text!r}: channels must differ")
    return pairs


def parse_range(text: str) -> tuple[float, float]:
    """Parse ``"START:STOP"`` (keV of the first and last channel, CLI ``--kev-range``).

    Raises
    ------
    CalibrationError
        Not two numbers, or ``STOP <= START``.
    """
    m = None
    if isinstance(text, str):
        m = re.fullmatch(rf"\s*({_NUM})\s*[:,;]\s*({_NUM})\s*", text)
    if m is None:
        raise CalibrationError(f"energy range {text!r}: expected 'START:STOP' in keV (e.g. '-0.96:40.0')")
    start, stop = float(m.group(1)), float(m.group(2))
    if not stop > start:
        raise CalibrationError(f"energy range {text!r}: STOP must be above START")
    return start, stop


# ===================================================================== reference lines


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
    e = np.array([c[0] for c in ref.components])
    w = np.array([c[1] for c in ref.components])
    mean = float(np.sum(w * e) / np.sum(w))
    return physics.FWHM_PER_SIGMA * float(np.sqrt(np.sum(w * (e - mean) ** 2) / np.sum(w)))


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


def _cluster_lines(lines: Sequence[physics.Line], fwhm6: float) -> list[list[physics.Line]]:
    """Lines of the same group (K-alpha1,2; K-beta1,3...) closer than one detector FWHM,
    chained in energy order."""
    ordered = sorted(lines, key=lambda ln: (_group_key(ln.siegbahn), ln.energy_keV))
    clusters: list[list[physics.Line]] = []
    for ln in ordered:
        if clusters:
            last = clusters[-1][-1]
            width = float(physics.fwhm_keV(ln.energy_keV, fwhm6))
            same = _group_key(ln.siegbahn) == _group_key(last.siegbahn)
            if same and ln.energy_keV - last.energy_keV < width:
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
    clusters = _cluster_lines(lines, _FWHM6_DEFAULT)
    if not clusters:
        return out
    total = [sum(ln.rel_intensity for ln in c) for c in clusters]
    top = max(total)
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
            )
        )
    return out


@functools.lru_cache(maxsize=64)
def _reference_lines(anode: str, tube_kv: float) -> tuple[_Ref, ...]:
    """Zero peak, anode lines and common element lines, sorted by energy."""
    refs: list[_Ref] = [_ZERO]
    lines = physics.anode_lines(anode, tube_kv)
    fams = [f for f in ("K", "L", "M") if any(ln.family == f for ln in lines)]
    for f in fams:
        fam_lines = [ln for ln in lines if ln.family == f]
        fam = _family_refs(anode, fam_lines, "anode", 0.04, f == fams[0], ("Ka", "Kb", "La", "Lb"))
        # a scattered line whose Compton peak half overlaps it has no usable centre
        refs += [r for r in fam if not _compton_blended(r.keV)]
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


def _compton_blended(keV: float) -> bool:
    """Whether the Compton peak of a scattered line at ``keV`` overlaps it so much that
    the observed peak centre is shifted (shift at a typical 105-degree geometry between
    0.2 and 2.5 detector FWHM): such anode lines cannot anchor a calibration."""
    shift = keV - float(compton_shift(keV, 105.0))
    ratio = shift / float(physics.fwhm_keV(keV, _FWHM6_DEFAULT))
    return 0.2 < ratio < 2.5


def _anode_main(refs: Sequence[_Ref]) -> _Ref | None:
    """The anode's main Rayleigh line (K-alpha, or L-alpha), if usable (see
    :func:`_compton_blended`)."""
    anode = [r for r in refs if r.kind == "anode"]
    for r in anode:
        if r.primary:
            return r
    return None


# ========================================================================= observations


@dataclass
class _Spec:
    """One spectrum prepared for peak work."""

    y: np.ndarray
    base: np.ndarray
    scale: float
    fwhm: float  # typical FWHM (channels)
    source: str
    evidence: np.ndarray  # (smoothed y - baseline) / noise, per channel
    noise: np.ndarray  # noise standard deviation of the smoothed spectrum (counts)

    def line_evidence(self, channel: float, tol: float) -> float:
        """Largest significance of the data above the baseline within ``channel +- tol``
        (channels); NaN when that range is not on the axis."""
        n = self.evidence.size
        lo, hi = int(math.floor(channel - tol)), int(math.ceil(channel + tol)) + 1
        if lo < 1 or hi > n - 1:
            return float("nan")
        return float(np.max(self.evidence[lo:hi]))


@dataclass
class _Obs:
    """An observed peak (positions and widths in channels)."""

    channel: float
    err: float
    fwhm: float
    significance: float
    weight: float
    spec: _Spec
    ok: bool
    index: int
    broad: bool
    height: float = 0.0  # counts above the baseline
    edge: bool = False  # a peak cut by the start of the axis (fitted on its visible flank)


def _weight(significance: float) -> float:
    """Score weight of a peak: grows with its significance, so strong peaks dominate."""
    return float(math.sqrt(max(significance, 0.0)))


def _prepare(y: np.ndarray, source: str) -> _Spec:
    from scipy.ndimage import gaussian_filter1d

    fwhm = _peaks.estimate_fwhm_channels(y)
    base = _peaks.baseline(y, fwhm_channels=fwhm)
    scale = _peaks.noise_scale(y)
    ys = gaussian_filter1d(y, 1.0)
    noise = scale * _SMOOTH_NOISE * np.sqrt(np.maximum(base, 1.0))
    evidence = (ys - base) / noise
    return _Spec(y=y, base=base, scale=scale, fwhm=fwhm, source=source, evidence=evidence, noise=noise)


def _observe(spec: _Spec, max_peaks: int = 30, n_sigma: float = 8.0) -> list[_Obs]:
    """The ``max_peaks`` most significant peaks with Gaussian-fitted centres."""
    # significance here is against the noise of the lightly smoothed spectrum (about half
    # the single-channel noise): the scale all thresholds of this module are set in
    idx, props = _peaks.find_spectrum_peaks(
        spec.y,
        base=spec.base,
        scale=spec.scale,
        fwhm_channels=spec.fwhm,
        n_sigma=n_sigma * _SMOOTH_NOISE,
    )
    if idx.size == 0:
        return []
    significance = props["significance"] / _SMOOTH_NOISE
    order = np.argsort(significance)[::-1][:max_peaks]
    idx, sig = idx[order], significance[order]
    measured = props["fwhm"][order]
    # fit windows: the measured width, but never much wider than a typical line (the
    # measured width of a blend such as Rh L-alpha + L-beta would pull the centre)
    widths = np.clip(measured, 0.4 * spec.fwhm, 1.3 * spec.fwhm)
    fits = _peaks.fit_peaks(
        spec.y,
        idx,
        fwhm_channels=widths,
        base=spec.base,
        scale=spec.scale,
        half_window=0.8,
        subtract_baseline=True,
    )
    out = []
    for f, s, w, wm in zip(fits, sig, widths, measured):
        if not (0 <= f.center <= spec.y.size - 1):
            continue
        err = f.center_err if (f.ok and math.isfinite(f.center_err)) else 0.3 * w
        fwhm = f.fwhm if f.ok else float(wm)
        out.append(
            _Obs(
                channel=float(f.center),
                err=float(max(err, 0.01)),
                fwhm=float(fwhm),
                significance=float(s),
                weight=_weight(float(s)),
                spec=spec,
                ok=f.ok,
                index=int(f.index),
                broad=bool(fwhm > 4.0 * spec.fwhm),
                height=float(f.amplitude),
            )
        )
    edge = _edge_peak(spec)
    if edge is not None:  # it replaces what the peak search made of the same peak
        out = [o for o in out if abs(o.channel - edge.channel) > 0.5 * edge.fwhm] + [edge]
    return out


def _edge_peak(spec: _Spec) -> _Obs | None:
    """A strong peak at or cut by the start of the axis (the zero peak of an axis that
    starts near 0 keV), where the baseline and the peak search are unreliable: a Gaussian
    fitted to the logarithm of its visible part."""
    y = spec.y
    n = y.size
    if n < 20:
        return None
    i0 = int(np.argmax(y[:4]))
    if not (y[i0] >= y[i0 + 1] >= y[i0 + 2]):
        return None
    # the baseline cannot be trusted at the edge: a constant background from the data
    # just after the falling flank
    j = i0 + 1
    while j < min(n - 1, 60) and y[j + 1] <= y[j]:
        j += 1
    w = max(3, int(round(spec.fwhm)))
    bg = float(np.min(y[j : j + w])) if j + w <= n else float(y[j])
    noise = spec.scale * math.sqrt(max(bg, 1.0))
    height = float(y[i0] - bg)
    if height < 50.0 * noise:
        return None
    keep = (y[: j + 1] - bg) > 0.02 * height
    x = np.arange(j + 1, dtype=np.float64)[keep]
    v = (y[: j + 1] - bg)[keep]
    if x.size < 4:
        return None
    try:
        c2, c1, _ = np.polyfit(x, np.log(v), 2, w=np.sqrt(v))
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not c2 < 0:
        return None
    sigma = math.sqrt(-1.0 / (2.0 * c2))
    mu = -c1 / (2.0 * c2)
    if not (0.5 <= sigma <= spec.fwhm and -3.0 * sigma <= mu <= i0 + sigma):
        return None
    amp = height * math.exp(0.5 * ((i0 - mu) / sigma) ** 2)
    err = sigma / math.sqrt(max(float(np.sum(v)) / max(spec.scale, 1e-9) ** 2, 1.0))
    sig = amp / noise
    return _Obs(
        channel=float(mu),
        err=float(max(err, 0.02)),
        fwhm=float(physics.FWHM_PER_SIGMA * sigma),
        significance=float(sig),
        weight=_weight(float(sig)),
        spec=spec,
        ok=True,
        index=0,
        broad=False,
        height=float(amp),
        edge=True,
    )


def _merge(primary: list[_Obs], extra: list[_Obs]) -> list[_Obs]:
    """Add peaks of ``extra`` (max spectrum) not already in ``primary`` (sum spectrum)."""
    out = list(primary)
    for o in extra:
        if all(abs(o.channel - p.channel) > 0.5 * p.spec.fwhm for p in primary):
            out.append(o)
    out.sort(key=lambda o: o.channel)
    return out


# ============================================================================ matching

_FANO_SLOPE = physics.FWHM_PER_SIGMA**2 * physics.FANO_SI * physics.PAIR_ENERGY_SI_KEV
_TOL = 0.3  # match tolerance, fraction of the (default) detector FWHM


def _fwhm_at(keV: np.ndarray | float, fwhm6: float = _FWHM6_DEFAULT) -> np.ndarray:
    return np.asarray(physics.fwhm_keV(np.maximum(keV, 0.0), fwhm6), dtype=np.float64)


def _width_ok(fwhm_keV: np.ndarray, line_keV: np.ndarray, significance: np.ndarray) -> np.ndarray:
    """Whether peaks of width ``fwhm_keV`` (keV) can be lines at ``line_keV``.

    A significant peak (well-measured width) must be at least 0.75 x the Fano limit of
    silicon and at most 1.15 x the FWHM of a poor detector (0.35 keV at 5.9 keV) wide;
    weak peaks only the latter with a 1.5 x margin. Keeps the narrow zero peak and the
    broad Compton peak from posing as fluorescence lines.
    """
    e = np.maximum(np.asarray(line_keV, dtype=np.float64), 0.0)
    strong = np.asarray(significance) >= 30.0
    lower = np.where(strong, 0.75 * np.sqrt(_FANO_SLOPE * e), 0.0)
    upper = np.where(strong, 1.15, 1.5) * _fwhm_at(e, 0.35)
    return (fwhm_keV >= lower) & (fwhm_keV <= upper)


def _consistent_widths(
    pairs: list[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float
) -> tuple[list[tuple[int, int]], float | None]:
    """Drop matches whose peak width disagrees with the detector resolution implied by
    the other matched peaks; return the kept pairs and that resolution (keV at 5.9 keV)."""
    f6 = _implied_fwhm6(pairs, obs, refs, gain)
    if f6 is None:
        return pairs, None
    f6c = float(np.clip(f6, 0.121, 0.5))
    kept = []
    for k, r in pairs:
        o, ref = obs[k], refs[r]
        if o.ok and o.significance >= 30.0:
            model = math.hypot(float(_fwhm_at(ref.keV, f6c)), _cluster_fwhm(ref))
            ratio = o.fwhm * gain / model
            lo, hi = {"zero": (0.5, 1.6), "anode": (0.6, 1.8)}.get(ref.kind, (0.7, 1.5))
            if not lo <= ratio <= hi:
                continue
        kept.append((k, r))
    return kept, f6


@dataclass
class _Hyp:
    gain: float
    offset: float
    score: float = -np.inf
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (obs index, ref index)
    fwhm6: float = _FWHM6_DEFAULT
    rms_eV: float = np.nan
    credit: dict = field(default_factory=dict)  # (obs, ref) -> score contribution
    refuted: set = field(default_factory=set)  # (obs, ref) whose companion lines are missing


def _model_sigma(fwhm_keV: np.ndarray | float, significance: np.ndarray | float) -> np.ndarray:
    """Model uncertainty (keV) of a coarse peak centre: 3 % of the FWHM for strong peaks,
    more for weak ones (blends, background, shape)."""
    return 0.03 * np.asarray(fwhm_keV) * (1.0 + 10.0 / np.sqrt(np.maximum(significance, 1.0)))


def _match_sigma(ob: _Obs, ref: _Ref, gain: float) -> float:
    """Standard uncertainty (keV) of the residual of a peak matched to a line."""
    model = float(_model_sigma(_fwhm_at(ref.keV), ob.significance))
    return math.sqrt((gain * ob.err) ** 2 + ref.sys_keV**2 + model**2)


def _verification(res: np.ndarray, s: np.ndarray, lev: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Credit (0..1) of matches in a weighted straight-line fit: how well the *other*
    matches predict each one.

    The leave-one-out residual ``res / (1 - lev)`` has standard deviation
    ``s / sqrt(1 - lev)``; the credit is its Gaussian likelihood times the precision of
    that prediction relative to the match tolerance ``tol`` (a match that alone fixes the
    line, as in a two-point fit, is not verified at all).
    """
    free = np.clip(1.0 - lev, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(free > 1e-9, s / np.sqrt(np.maximum(free, 1e-9)), np.inf)
        z2 = np.where(free > 1e-9, res**2 / (s**2 * np.maximum(free, 1e-9)), np.inf)
    precision = np.clip(1.0 - spread / tol, 0.0, 1.0)
    return precision * np.exp(-0.5 * z2)


def _leverage(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Leverage of each point of a weighted straight-line fit (weights ``1/s**2``)."""
    w = 1.0 / s**2
    s0, s1, s2 = w.sum(), (w * c).sum(), (w * c * c).sum()
    det = s0 * s2 - s1 * s1
    if not det > 0:
        return np.ones_like(c)
    return np.clip(w * (s2 - 2.0 * c * s1 + c * c * s0) / det, 0.0, 1.0)


def _assign(
    gain: float,
    offset: float,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    tol_frac: float,
    n_channels: int,
) -> list[tuple[int, int]]:
    """Match observed peaks to reference lines with chemical consistency.

    Returns (obs index, ref index) pairs; each reference is used at most once; a
    secondary line (K-beta, L-beta...) only with its element's stronger primary line.
    """
    ref_e = np.array([r.keV for r in refs])
    ch = np.array([o.channel for o in obs])
    e = offset + gain * ch
    tol = tol_frac * _fwhm_at(e)
    lo = np.searchsorted(ref_e, e - tol, side="left")
    hi = np.searchsorted(ref_e, e + tol, side="right")
    cands: list[list[int]] = []
    for k, (a, b) in enumerate(zip(lo, hi)):
        cs = list(range(a, b))
        ob = obs[k]
        if cs:
            ok = _width_ok(np.full(len(cs), ob.fwhm * gain), ref_e[cs], np.full(len(cs), ob.significance))
            cs = [r for r, good in zip(cs, ok) if good]
        cands.append(cs)
    # support of each element: weight of the peaks that may be one of its main lines
    support: dict[str, float] = {}
    for k, cs in enumerate(cands):
        seen: set[str] = set()
        for r in cs:
            ref = refs[r]
            if ref.element is not None and ref.element not in seen:
                seen.add(ref.element)
                f = 1.0 if ref.fprimary else 0.5
                support[ref.element] = support.get(ref.element, 0.0) + f * obs[k].weight
    chosen: dict[int, int] = {}
    for k, cs in enumerate(cands):
        if not cs:
            continue

        def rank(r: int, k: int = k) -> tuple:
            ref = refs[r]
            s = support.get(ref.element, 0.0) if ref.element else 1e9
            if ref.kind == "anode":
                s += 5.0
            return (s, ref.strength, -abs(e[k] - ref.keV))

        chosen[k] = max(cs, key=rank)
    # each reference at most once: the closest (in tolerances), then the strongest
    by_ref: dict[int, int] = {}
    for k, r in chosen.items():
        j = by_ref.get(r)
        if j is None:
            by_ref[r] = k
            continue
        dk = abs(e[k] - refs[r].keV) / tol[k] - 0.1 * obs[k].weight
        dj = abs(e[j] - refs[r].keV) / tol[j] - 0.1 * obs[j].weight
        if dk < dj:
            by_ref[r] = k
    # a secondary line (K-beta, L-beta...) needs its family's main line, stronger
    fam_sig: dict[tuple[str | None, str], float] = {}
    for r, k in by_ref.items():
        ref = refs[r]
        if ref.fprimary:
            key = (ref.element, ref.family)
            fam_sig[key] = max(fam_sig.get(key, 0.0), obs[k].significance)
    e_lo, e_hi = offset, offset + gain * (n_channels - 1)
    fam_main = {(r.element, r.family): r for r in refs if r.fprimary}
    pairs = []
    for r, k in by_ref.items():
        ref = refs[r]
        if not ref.fprimary and ref.kind == "element":
            main = fam_main.get((ref.element, ref.family))
            if main is not None and e_lo < main.keV < e_hi:
                if fam_sig.get((ref.element, ref.family), 0.0) < 0.5 * obs[k].significance:
                    continue
        pairs.append((k, r))
    pairs.sort()
    return pairs


def _lsq(
    pairs: Sequence[tuple[int, int]],
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    gain_guess: float,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray] | None:
    """Robust weighted straight-line fit energy = offset + gain * channel.

    Returns (gain, offset, residuals keV, sigmas keV, inlier mask) or None.
    """
    if len(pairs) < 2:
        return None
    c = np.array([obs[k].channel for k, _ in pairs])
    e = np.array([refs[r].keV for _, r in pairs])
    s = np.array([_match_sigma(obs[k], refs[r], gain_guess) for k, r in pairs])
    inl = np.ones(c.size, dtype=bool)
    gain = offset = float("nan")
    for _ in range(4):
        if inl.sum() < 2 or np.ptp(c[inl]) <= 0:
            return None
        a = np.column_stack([np.ones(inl.sum()), c[inl]]) / s[inl, None]
        sol, *_ = np.linalg.lstsq(a, e[inl] / s[inl], rcond=None)
        offset, gain = float(sol[0]), float(sol[1])
        res = offset + gain * c - e
        new = np.abs(res) <= 3.0 * s
        if new.sum() < 2:
            new = np.abs(res) <= np.sort(np.abs(res))[1]
        if np.array_equal(new, inl):
            break
        inl = new
    res = offset + gain * c - e
    return gain, offset, res, s, inl


def _implied_fwhm6(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float
) -> float | None:
    """Detector FWHM at 5.9 keV (keV) implied by the widths of matched single-line peaks:
    their median weighted by significance (the strongest widths are the best measured)."""
    vals, wts, kinds = [], [], []
    for k, r in pairs:
        ref, o = refs[r], obs[k]
        if ref.kind == "zero" or not o.ok or o.significance < 30:
            continue
        w = o.fwhm * gain
        if _cluster_fwhm(ref) > 0.7 * w:
            continue
        f2 = w * w - _FANO_SLOPE * ref.keV + _FANO_SLOPE * physics.FWHM_REFERENCE_KEV
        vals.append(math.sqrt(max(f2, 1e-6)))
        wts.append(o.significance)
        kinds.append(ref.kind)
    if not vals:
        return None
    # fluorescence lines only: scattered tube lines are broadened
    vals = [v for v, kd in zip(vals, kinds) if kd == "element"]
    wts = [w for w, kd in zip(wts, kinds) if kd == "element"]
    if not vals:
        return None
    order = np.argsort(vals)
    v, w = np.asarray(vals)[order], np.asarray(wts)[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, 0.5 * cum[-1])])


def _companion_present(
    prim: _Obs,
    ref: _Ref,
    rel: float,
    c: float,
    gain: float,
    obs_e: np.ndarray,
    obs_sig: np.ndarray,
    expected_sig: float,
) -> bool:
    """Whether a companion line (K-beta...) of a matched main-line peak shows at channel
    ``c``: as a peak of its own within 0.2 FWHM, or as a shoulder on the main peak's
    Gaussian tail whose maximum is at the predicted place (not the flank of a displaced
    peak)."""
    fw_keV = float(_fwhm_at(ref.keV))
    near = np.abs(obs_e - ref.keV) <= 0.2 * fw_keV
    if np.any(near & (obs_sig >= 0.1 * expected_sig)):
        return True
    spec = prim.spec
    half = max(1, int(round(0.25 * fw_keV / gain)))
    i = int(round(c))
    lo, hi = max(i - half, 0), min(i + half + 1, spec.y.size)
    if hi - lo < 2:
        return False
    x = np.arange(lo, hi)
    excess = spec.evidence[lo:hi] * spec.noise[lo:hi]
    excess = excess - prim.height * np.exp(-4.0 * math.log(2.0) * ((x - prim.channel) / prim.fwhm) ** 2)
    at = float(excess[min(max(i - lo, 0), excess.size - 1)])
    want = prim.height * rel * min(1.0, prim.fwhm * gain / fw_keV)
    return at >= 0.3 * want and at >= 0.85 * float(np.max(excess))


def _compton_ok(spec: _Spec, gain: float, offset: float, anode_ref: _Ref) -> bool | None:
    """Whether the broad Compton partner of the anode's main line is there: a maximum of
    the data above the baseline (>= 8 sigma) inside the Compton range, below the Rayleigh
    peak. None when the range is not on the axis or the Compton peak is not separable."""
    e0 = anode_ref.keV
    fw = float(_fwhm_at(e0))
    e_lo = float(compton_shift(e0, 180.0)) - 0.5 * fw
    e_hi = e0 - 1.5 * fw
    if e_hi - e_lo < fw:
        return None
    n = spec.y.size
    lo, hi = int(math.floor((e_lo - offset) / gain)), int(math.ceil((e_hi - offset) / gain))
    if lo < 2 or hi > n - 2 or hi - lo < 5:
        return None
    seg = spec.evidence[lo:hi]
    k = int(np.argmax(seg))
    if k < 2 or k > seg.size - 3:
        return False
    return bool(seg[k] >= 8.0)


def _fano_ratio(
    pairs: Sequence[tuple[int, int]], obs: Sequence[_Obs], refs: Sequence[_Ref], gain: float
) -> float | None:
    """Slope of FWHM**2 against energy over the matched peaks, relative to the Fano slope
    of silicon. Widths scale with the gain, energies too: a wrong gain by a factor ``s``
    gives a ratio near ``s``. None when fewer than two well-measured peaks span 2 keV."""
    e, w2, wt = [], [], []
    for k, r in pairs:
        ref, o = refs[r], obs[k]
        if not o.ok or o.significance < 30 or ref.kind == "anode":
            continue
        fw = o.fwhm * gain
        if _cluster_fwhm(ref) > 0.3 * fw:
            continue
        e.append(ref.keV)
        w2.append(fw * fw)
        wt.append(min(o.significance, 1e4))
    if len(e) < 2 or max(e) - min(e) < 2.0:
        return None
    e_a, w2_a, wt_a = np.array(e), np.array(w2), np.sqrt(np.array(wt))
    a = np.column_stack([np.ones_like(e_a), e_a]) * wt_a[:, None]
    sol, *_ = np.linalg.lstsq(a, w2_a * wt_a, rcond=None)
    return float(sol[1] / _FANO_SLOPE)


def _refine(
    hyp: _Hyp,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    spec: _Spec,
    anode_ref: _Ref | None,
    anode_weight: float,
) -> _Hyp:
    """Least-squares refinement of a hypothesis on its matched peaks, then its score.

    Score: sum over matched peaks of ``weight * exp(-0.5 * (residual / sigma)**2)``; the
    anode's main line adds ``anode_weight`` when matched and removes 30 % of it when
    nothing is at its place; a strong primary line whose companion (K-beta...) is
    missing does not count. Implausible detector resolutions reject the hypothesis.
    """
    n = spec.y.size
    g, o = hyp.gain, hyp.offset
    pairs: list[tuple[int, int]] = []
    fit = None
    for tol_frac in (0.5, 0.4, _TOL, _TOL):
        new_pairs = _assign(g, o, obs, refs, tol_frac, n)
        new_fit = _lsq(new_pairs, obs, refs, g)
        if new_fit is None or not (GAIN_RANGE[0] * 0.8 < new_fit[0] < GAIN_RANGE[1] * 1.2):
            break
        pairs, fit = new_pairs, new_fit
        g, o = fit[0], fit[1]
    out = _Hyp(gain=g, offset=o)
    if fit is None:
        return out
    pairs, _ = _consistent_widths(pairs, obs, refs, g)
    fit = _lsq(pairs, obs, refs, g)
    if fit is None:
        return out
    gain, offset, res, sig, inl = fit
    out.gain, out.offset = gain, offset
    out.pairs = [p for p, keep in zip(pairs, inl) if keep]
    f6 = _implied_fwhm6(out.pairs, obs, refs, gain)
    if f6 is not None and not (_FWHM6_RANGE[0] <= f6 <= _FWHM6_RANGE[1]):
        return out  # score stays -inf
    out.fwhm6 = float(np.clip(f6, 0.121, 0.4)) if f6 is not None else _FWHM6_DEFAULT
    ch_in = np.array([obs[k].channel for k, _ in out.pairs])
    tol_in = _TOL * _fwhm_at(np.array([refs[r].keV for _, r in out.pairs]))
    credit = _verification(res[inl], sig[inl], _leverage(ch_in, sig[inl]), tol_in)
    like = dict(zip(out.pairs, credit))
    contrib = {p: obs[p[0]].weight * like[p] for p in out.pairs}
    out.rms_eV = float(np.sqrt(np.mean(res[inl] ** 2)) * 1e3)

    def chan(kev: float) -> float:
        return (kev - offset) / gain

    # the anode's main line: a bonus when matched, a penalty when nothing is at its place
    if anode_ref is not None:
        hit = [p for p in out.pairs if refs[p[1]] is anode_ref]
        if hit and _compton_ok(spec, gain, offset, anode_ref) is not False:
            k = hit[0][0]
            contrib[hit[0]] += anode_weight * like[hit[0]] * min(1.0, obs[k].significance / 50.0)
    # strong main lines must show their companions (K-beta, L-beta...) as peaks
    matched_refs = {r for _, r in out.pairs}
    obs_e = offset + gain * np.array([ob.channel for ob in obs])
    obs_sig = np.array([ob.significance for ob in obs])
    for p in out.pairs:
        k, r = p
        prim = refs[r]
        if not prim.fprimary or prim.element is None:
            continue
        sigk = obs[k].significance
        for q, ref in enumerate(refs):
            if ref.element != prim.element or ref.family != prim.family:
                continue
            if ref.fprimary:
                continue
            rel = ref.strength / max(prim.strength, 1e-9)
            expected = sigk * rel
            if rel < 0.05 or expected < 30.0:
                continue
            if q in matched_refs:
                got = max(obs[kk].significance for kk, rr in out.pairs if rr == q)
                if got >= 0.05 * expected:
                    continue
                contrib[p] = 0.0  # its companion is far too weak: not that line
                out.refuted.add(p)
                break
            c = chan(ref.keV)
            if not (2 <= c <= n - 3):
                continue
            # masked by a peak matched to another line: cannot tell, no verdict
            fw_q = float(_fwhm_at(ref.keV))
            if any(abs(obs_e[kk] - ref.keV) <= 1.0 * fw_q and kk != k for kk, _ in out.pairs):
                continue
            if not _companion_present(obs[k], ref, rel, c, gain, obs_e, obs_sig, expected):
                contrib[p] = 0.0  # a strong line without its companion: not that line
                out.refuted.add(p)
                break
    fano = _fano_ratio(out.pairs, obs, refs, gain)
    if fano is not None and 0.6 <= fano <= 1.8:
        # the zero peak's width fits the resolution of the matched lines: a verified zero
        for p in out.pairs:
            if refs[p[1]].kind == "zero" and obs[p[0]].ok and obs[p[0]].significance >= 30:
                contrib[p] = max(contrib[p], obs[p[0]].weight)
    score = sum(contrib.values())
    if fano is not None and not 0.4 <= fano <= 2.5:
        score *= 0.2  # widths grow with energy at the wrong rate: the gain is off
    if anode_ref is not None and not any(refs[r] is anode_ref for _, r in out.pairs):
        tol_ch = _TOL * float(_fwhm_at(anode_ref.keV)) / gain
        ev = spec.line_evidence(chan(anode_ref.keV), tol_ch)
        if np.isfinite(ev) and ev < 3.0:
            score -= 0.3 * anode_weight
    out.score = float(score)
    out.credit = dict(contrib)
    return out


def _anode_verified(hyp: _Hyp, obs: Sequence[_Obs], refs: Sequence[_Ref], anode_ref: _Ref) -> bool:
    """Whether a hypothesis puts a significant peak (>= 15 sigma) within 0.15 FWHM of the
    anode's main line, with its Compton partner below it."""
    for k, r in hyp.pairs:
        if refs[r] is anode_ref and obs[k].significance >= 15.0:
            e = hyp.offset + hyp.gain * obs[k].channel
            if abs(e - anode_ref.keV) > 0.15 * float(_fwhm_at(anode_ref.keV)):
                return False
            return _anode_pattern_ok(obs[k].spec, hyp.gain, hyp.offset, anode_ref, refs)
    return False


def _anode_pattern_ok(spec: _Spec, gain: float, offset: float, anode_ref: _Ref, refs: Sequence[_Ref]) -> bool:
    """The anode's main line comes with its Compton partner and, when on the axis, its
    K-beta (L-beta) Rayleigh companion (seen at its place above the baseline)."""
    if _compton_ok(spec, gain, offset, anode_ref) is False:
        return False
    n = spec.y.size
    for r in refs:
        if r.kind != "anode" or r.family != anode_ref.family or r.fprimary:
            continue
        if r.strength < 0.1:
            continue
        c = (r.keV - offset) / gain
        if not (2 <= c <= n - 3):
            continue
        tol = max(1.0, 0.15 * float(_fwhm_at(r.keV)) / gain)
        ev = spec.line_evidence(c, tol)
        if np.isfinite(ev) and ev < 3.0:
            return False
    return True


def _hypotheses(
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    n_channels: int,
    gain_range: tuple[float, float],
    offset_range: tuple[float, float],
    n_anchor_peaks: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (gain, offset) arrays from pairs of peaks x pairs of anchor lines."""
    usable = [i for i, o in enumerate(obs) if not o.broad]
    usable.sort(key=lambda i: -obs[i].significance)
    anchors_obs = sorted(usable[:n_anchor_peaks], key=lambda i: obs[i].channel)
    c = np.array([obs[i].channel for i in anchors_obs])
    ea = np.array([r.keV for r in refs if r.anchor])
    if c.size < 2 or ea.size < 2:
        return np.empty(0), np.empty(0)
    i1, i2 = np.triu_indices(c.size, 1)
    dc = c[i2] - c[i1]
    j1, j2 = np.triu_indices(ea.size, 1)
    de = ea[j2] - ea[j1]
    gain = de[None, :] / dc[:, None]
    offset = ea[j1][None, :] - gain * c[i1][:, None]
    gain, offset = gain.ravel(), offset.ravel()
    top = offset + gain * (n_channels - 1)
    keep = (
        (gain >= gain_range[0])
        & (gain <= gain_range[1])
        & (offset >= offset_range[0])
        & (offset <= offset_range[1])
        & (top >= 3.0)
    )
    return gain[keep], offset[keep]


def _medium_scores(
    gain: np.ndarray,
    offset: np.ndarray,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
    spec: _Spec,
    anode_ref: _Ref | None,
    anode_weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised refinement and likelihood score of many hypotheses.

    Per hypothesis: match every peak to its nearest line, two weighted least-squares
    updates of (gain, offset), then the score ``sum(weight * exp(-0.5 (res/sigma)**2))``
    over matches of plausible width whose family main line is matched too, plus the anode
    bonus. Returns (score, gain, offset, anode quality); the anode quality is the
    significance of the peak matched to the anode's main line times the Gaussian
    closeness of the match (0 when not matched within 0.15 FWHM by a 15-sigma peak).
    """
    ref_e = np.array([r.keV for r in refs])
    ref_sys = np.array([r.sys_keV for r in refs])
    index = {id(r): i for i, r in enumerate(refs)}
    fam_main = {(r.element, r.family): index[id(r)] for r in refs if r.fprimary}
    needs = np.array(
        [-1 if (r.fprimary or r.kind != "element") else fam_main.get((r.element, r.family), -1) for r in refs]
    )
    anode_i = -1 if anode_ref is None else index[id(anode_ref)]
    ch = np.array([o.channel for o in obs])
    err = np.array([o.err for o in obs])
    w = np.array([o.weight for o in obs])
    fw = np.array([o.fwhm for o in obs])
    sg = np.array([o.significance for o in obs])
    n = spec.y.size
    out_s = np.full(gain.size, -np.inf)
    out_g = gain.copy()
    out_o = offset.copy()
    out_v = np.zeros(gain.size)
    step = 4000
    for a in range(0, gain.size, step):
        g = gain[a : a + step, None].copy()
        o = offset[a : a + step, None].copy()

        def match(g: np.ndarray, o: np.ndarray, frac: float):
            e = o + g * ch[None, :]
            pos = np.clip(np.searchsorted(ref_e, e), 1, ref_e.size - 1)
            left = np.abs(e - ref_e[pos - 1]) < np.abs(e - ref_e[pos])
            j = np.where(left, pos - 1, pos)
            res = e - ref_e[j]
            ok = (np.abs(res) <= frac * _fwhm_at(e)) & _width_ok(fw[None, :] * g, ref_e[j], sg)
            sig2 = (
                (g * err[None, :]) ** 2 + ref_sys[j] ** 2 + _model_sigma(_fwhm_at(ref_e[j]), sg[None, :]) ** 2
            )
            return j, res, ok, sig2

        for frac, clip in ((0.5, 4.0), (0.35, 3.0), (0.3, 2.5)):
            j, res, ok, sig2 = match(g, o, frac)
            # robust: only matches consistent with the current line move it
            wt = np.where(ok & (res * res <= clip * clip * sig2), 1.0 / sig2, 0.0)
            e_ref = ref_e[j]
            s0 = wt.sum(1)
            s1 = (wt * ch).sum(1)
            s2 = (wt * ch * ch).sum(1)
            t0 = (wt * e_ref).sum(1)
            t1 = (wt * ch * e_ref).sum(1)
            det = s0 * s2 - s1 * s1
            good = (np.count_nonzero(wt > 0, axis=1) >= 2) & (det > 1e-12 * np.maximum(s0 * s2, 1e-300))
            g_new = np.where(good, (s0 * t1 - s1 * t0) / np.where(good, det, 1.0), g[:, 0])
            o_new = np.where(good, (t0 - g_new * s1) / np.where(s0 > 0, s0, 1.0), o[:, 0])
            sane = good & (g_new > GAIN_RANGE[0] * 0.8) & (g_new < GAIN_RANGE[1] * 1.2)
            g[:, 0] = np.where(sane, g_new, g[:, 0])
            o[:, 0] = np.where(sane, o_new, o[:, 0])
        j, res, ok, sig2 = match(g, o, _TOL)
        # verification credit (see _verification) of each match in each hypothesis
        wt = np.where(ok, 1.0 / sig2, 0.0)
        s0 = wt.sum(1, keepdims=True)
        s1 = (wt * ch).sum(1, keepdims=True)
        s2 = (wt * ch * ch).sum(1, keepdims=True)
        det = s0 * s2 - s1 * s1
        with np.errstate(divide="ignore", invalid="ignore"):
            lev = np.where(det > 0, wt * (s2 - 2.0 * ch * s1 + ch * ch * s0) / det, 1.0)
        like = _verification(res, np.sqrt(sig2), lev, _TOL * _fwhm_at(ref_e[j]))
        # secondary lines count only with their family's main line matched
        h = np.arange(j.shape[0])[:, None]
        matched = np.zeros((j.shape[0], ref_e.size), dtype=bool)
        np.logical_or.at(matched, (np.broadcast_to(h, j.shape)[ok], j[ok]), True)
        need = needs[j]
        main_e = np.where(need >= 0, ref_e[np.maximum(need, 0)], 0.0)
        main_on = (main_e > o) & (main_e < o + g * (n - 1))
        has_main = matched[np.broadcast_to(h, j.shape), np.maximum(need, 0)]
        valid = ok & ((need < 0) | has_main | ~main_on)
        score = (valid * like * w[None, :]).sum(1)
        if anode_i >= 0:
            is_anode = valid & (j == anode_i)
            fw_a = float(_fwhm_at(ref_e[anode_i]))
            close = np.abs(res) <= 0.15 * fw_a
            quality = sg[None, :] * np.exp(-0.5 * (res / (0.1 * fw_a)) ** 2)
            good_a = is_anode & close & (sg >= 15.0)[None, :]
            out_v[a : a + step] = np.where(good_a, quality, 0.0).max(1)
            bonus = (is_anode * like * np.minimum(1.0, sg / 50.0)[None, :]).max(1)
            score += anode_weight * bonus
            ca = (ref_e[anode_i] - o[:, 0]) / g[:, 0]
            on = (ca >= 2) & (ca <= n - 3)
            ev = spec.evidence[np.clip(np.rint(ca).astype(np.int64), 0, n - 1)]
            score -= np.where(on & ~is_anode.any(1) & (ev < 3.0), 0.3 * anode_weight, 0.0)
        out_s[a : a + step] = score
        out_g[a : a + step] = g[:, 0]
        out_o[a : a + step] = o[:, 0]
    return out_s, out_g, out_o, out_v


# ===================================================================== precise centres


def _window_fit(
    spec: _Spec,
    gain: float,
    offset: float,
    ref: _Ref,
    neighbours: Sequence[_Ref],
    fwhm6: float,
) -> tuple[float, float] | None:
    """Centre (channel) and its error of ``ref`` fitted with its neighbours' components.

    Model: sum of Gaussians at the component energies (relative positions fixed by the
    gain, widths from the detector model times a free factor), one free amplitude per
    line group, a quadratic background; the common shift and width factor are the
    non-linear parameters (the rest is solved linearly).
    """
    y = spec.y
    n = y.size
    fw_ch = float(_fwhm_at(ref.keV, fwhm6)) / gain
    c0 = (ref.keV - offset) / gain
    half = max(4.0, 1.1 * fw_ch)
    lo, hi = int(math.floor(c0 - half)), int(math.ceil(c0 + half)) + 1
    lo, hi = max(lo, 0), min(hi, n)
    if hi - lo < 7 or not (lo + 1 < c0 < hi - 2):
        return None
    x = np.arange(lo, hi, dtype=np.float64)
    yy = y[lo:hi]
    groups = [ref] + [r for r in neighbours if r is not ref]
    comps = []  # (group index, offset channels from c0, sigma channels at factor 1, rel)
    for gi, r in enumerate(groups):
        for ek, rel in r.components:
            dch = (ek - ref.keV) / gain
            if not (lo - 2 * fw_ch < c0 + dch < hi + 2 * fw_ch):
                continue
            sig = float(_fwhm_at(ek, fwhm6)) / physics.FWHM_PER_SIGMA / gain
            comps.append((gi, dch, sig, rel))
    ng = len(groups)
    u = (x - c0) / half
    w = 1.0 / (spec.scale * np.sqrt(np.maximum(yy, 1.0)))

    def design(p: np.ndarray) -> np.ndarray:
        shift, factor = p
        cols = np.zeros((x.size, ng))
        for gi, dch, sig, rel in comps:
            s = sig * factor
            cols[:, gi] += rel * np.exp(-0.5 * ((x - (c0 + shift + dch)) / s) ** 2)
        used = np.any(cols > 1e-12, axis=0)
        used[0] = True
        if x.size >= 15:
            return np.column_stack([cols[:, used], np.ones_like(x), u, u * u])
        return np.column_stack([cols[:, used], np.ones_like(x), u])

    def resid(p: np.ndarray) -> np.ndarray:
        d = design(p)
        beta, *_ = np.linalg.lstsq(d * w[:, None], yy * w, rcond=None)
        return (yy - d @ beta) * w

    lim = 0.5 * fw_ch
    try:
        res = optimize.least_squares(
            resid, x0=[0.0, 1.0], bounds=([-lim, 0.6], [lim, 1.8]), x_scale=[1.0, 0.1]
        )
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not res.success:
        return None
    d = design(res.x)
    beta, *_ = np.linalg.lstsq(d * w[:, None], yy * w, rcond=None)
    if not beta[0] > 0:
        return None
    dof = max(x.size - 2 - d.shape[1], 1)
    chi2 = float(np.sum(res.fun**2)) / dof
    try:
        # linear parameters are profiled out: the 2x2 covariance of (shift, factor)
        cov = np.linalg.inv(res.jac.T @ res.jac) * max(chi2, 1.0)
        err = float(math.sqrt(max(cov[0, 0], 0.0)))
    except np.linalg.LinAlgError:
        return None
    if abs(res.x[0]) > 0.98 * lim:  # ran into the bound: not trustworthy
        return None
    return c0 + float(res.x[0]), max(err, 0.01)


def _zero_fit(spec: _Spec, obs: _Obs) -> tuple[float, float] | None:
    if obs.edge:
        return obs.channel, obs.err
    fw = max(obs.fwhm, 2.0)
    fits = _peaks.fit_peaks(
        spec.y, [obs.index], fwhm_channels=fw, base=spec.base, scale=spec.scale, half_window=1.2
    )
    f = fits[0]
    if not f.ok:
        return None
    return f.center, max(f.center_err, 0.01)


def _precise(
    best: _Hyp,
    obs: Sequence[_Obs],
    refs: Sequence[_Ref],
) -> tuple[float, float, list[tuple[_Ref, float, float, bool]]]:
    """Refit the matched peaks with their line components, then gain and offset by
    weighted least squares with outlier rejection.

    Only the zero peak, anode lines and peaks at least 30 sigma strong enter the fit;
    weaker matches are reported with ``used=False``.

    Returns
    -------
    gain, offset, entries
        ``entries``: (reference, channel, channel error, used) per refitted peak.
    """
    g, o = best.gain, best.offset
    present = {refs[r].element for _, r in best.pairs if refs[r].element is not None}
    pool = [r for r in refs if r.kind != "zero" and r.element in present]
    entries: list[list[Any]] = []
    for _ in range(2):
        entries = []
        for k, r in best.pairs:
            ref, ob = refs[r], obs[k]
            if ref.kind == "zero":
                fit = _zero_fit(ob.spec, ob)
            else:
                fw = float(_fwhm_at(ref.keV, best.fwhm6))
                near = [q for q in pool if q is not ref and abs(q.keV - ref.keV) < 3.0 * fw]
                fit = _window_fit(ob.spec, g, o, ref, near, best.fwhm6)
            if fit is None:
                continue
            refuted = (k, r) in best.refuted
            trusted = not refuted and (ref.kind in ("zero", "anode") or ob.significance >= 30.0)
            entries.append([ref, fit[0], fit[1], trusted])
        used = [e for e in entries if e[3]]
        if len(used) < 2:
            break
        while True:
            c = np.array([e[1] for e in used])
            kev = np.array([e[0].keV for e in used])
            s = np.sqrt(
                (g * np.array([e[2] for e in used])) ** 2
                + np.array([e[0].sys_keV for e in used]) ** 2
                + (0.01 * _fwhm_at(kev)) ** 2
            )
            a = np.column_stack([np.ones_like(c), c]) / s[:, None]
            sol, *_ = np.linalg.lstsq(a, kev / s, rcond=None)
            o_new, g_new = float(sol[0]), float(sol[1])
            res = o_new + g_new * c - kev
            # outliers: far off in their own uncertainty, or off by a quarter FWHM
            z = np.maximum(np.abs(res) / s, 16.0 * np.abs(res) / _fwhm_at(kev))
            worst = int(np.argmax(z))
            if len(used) > 2 and z[worst] > 4.0 and abs(res[worst]) > 0.006:
                used[worst][3] = False
                used = [e for e in used if e[3]]
                continue
            g, o = g_new, o_new
            break
    return g, o, [(e[0], float(e[1]), float(e[2]), bool(e[3])) for e in entries]


def _find_compton(
    spec: _Spec, gain: float, offset: float, anode_ref: _Ref | None, fwhm6: float
) -> tuple[float | None, float | None]:
    """Energy (keV) of the Compton peak of the anode's main line and the angle (deg)."""
    if anode_ref is None:
        return None, None
    e0 = anode_ref.keV
    e_min = float(compton_shift(e0, 180.0))
    fw0 = float(_fwhm_at(e0, fwhm6))
    e_max = e0 - 1.0 * fw0
    if e_max - e_min < fw0:
        return None, None  # Compton and Rayleigh not separable (soft anode line)
    n = spec.y.size
    lo = int(max(0, math.floor((e_min - 2 * fw0 - offset) / gain)))
    hi = int(min(n, math.ceil((e0 - offset) / gain)))
    if hi - lo < 10:
        return None, None
    from scipy.ndimage import gaussian_filter1d

    ys = gaussian_filter1d(spec.y, max(1.0, 0.5 * fw0 / gain))
    seg_lo = int(max(lo, math.floor((e_min - offset) / gain)))
    seg_hi = int(min(hi, math.ceil((e_max - offset) / gain)))
    if seg_hi - seg_lo < 3:
        return None, None
    seg = ys[seg_lo:seg_hi] - spec.base[seg_lo:seg_hi]
    # the most prominent local maximum (the Rayleigh peak's flank rises at the upper end)
    from scipy.signal import find_peaks

    cand, props = find_peaks(seg, prominence=0.0)
    if cand.size == 0:
        return None, None
    i = seg_lo + int(cand[np.argmax(props["prominences"])])
    height = float(ys[i] - spec.base[i])
    noise = spec.scale * math.sqrt(max(spec.base[i], 1.0))
    if height < 5.0 * noise / math.sqrt(max(1.0, 0.5 * fw0 / gain)):
        return None, None
    # centre: Gaussian fit to the core of the (broad) peak
    fits = _peaks.fit_peaks(
        spec.y,
        [i],
        fwhm_channels=2.0 * fw0 / gain,
        base=spec.base,
        scale=spec.scale,
        half_window=0.8,
    )
    c = fits[0].center if fits[0].ok else float(i)
    ec = offset + gain * c
    if not (e_min <= ec < e0):
        ec = offset + gain * i
    try:
        theta = float(detector_angle(ec, e0))
    except ParameterError:
        return None, None
    return float(ec), theta


# ============================================================================ public API


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
) -> Calibration:
    """Energy calibration from the peaks of a spectrum alone.

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

    Returns
    -------
    Calibration
        ``method='auto'``, with the peaks used and their residuals, the scattering angle
        when the Compton peak is found, and ``quality`` diagnostics.

    Raises
    ------
    CalibrationError
        Bad input, or no consistent calibration (fewer than three peaks agree).
    """
    y = _as_1d(sum_spectrum, "sum spectrum")
    n = y.size
    ym = None
    if max_spectrum is not None:
        ym = _as_1d(max_spectrum, "max spectrum")
        if ym.size != n:
            raise CalibrationError(f"max spectrum has {ym.size} channels, sum spectrum {n}: they must match")
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

    refs = _reference_lines(anode_sym, kv)
    anode_ref = _anode_main(refs)
    spec = _prepare(y, "sum")
    obs = _observe(spec)
    if ym is not None:
        obs = _merge(obs, _observe(_prepare(ym, "max")))
    if len(obs) < 2:
        raise CalibrationError(
            f"auto calibration found {len(obs)} significant peak(s) in the spectrum; "
            "give a manual calibration (two CHANNEL:KEV pairs) or an energy range"
        )
    gains, offsets = _hypotheses(obs, refs, n, (g_lo, g_hi), offset_range)
    if gains.size == 0:
        raise CalibrationError(
            "auto calibration: no pair of peaks gives a gain within "
            f"{g_lo}-{g_hi} keV/channel; give a manual calibration or an energy range"
        )
    anode_weight = max(o.weight for o in obs)
    medium, g_med, o_med, verified = _medium_scores(gains, offsets, obs, refs, spec, anode_ref, anode_weight)
    kept: list[_Hyp] = []
    # candidates: the best that find the anode's main line with its Compton partner, and
    # the best of the others
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
    refined = [_refine(h, obs, refs, spec, anode_ref, anode_weight) for h in kept]
    refined = [h for h in refined if np.isfinite(h.score) and len(h.pairs) >= 3]
    # the anode's main line is the anchor when present: if some solutions find it (a
    # significant peak close to its energy, with its Compton partner), keep only those
    if anode_ref is not None:
        verified_h = [h for h in refined if _anode_verified(h, obs, refs, anode_ref)]
        if verified_h:
            # an unverified solution survives only when it is far better (the checks of
            # the Compton partner can miss on a coarse or short axis)
            best_v = max(h.score for h in verified_h)
            refined = verified_h + [h for h in refined if h not in verified_h and h.score > 2.0 * best_v]
    # merge hypotheses that converged to the same solution
    refined.sort(key=lambda h: (-h.score, h.rms_eV if np.isfinite(h.rms_eV) else 1e9))
    distinct: list[_Hyp] = []
    for h in refined:
        if any(abs(h.gain - d.gain) < 0.002 * h.gain and abs(h.offset - d.offset) < 0.02 for d in distinct):
            continue
        distinct.append(h)
    if not distinct:
        raise CalibrationError(
            "auto calibration found no consistent solution (no calibration puts three "
            f"peaks on known lines for anode {anode_sym} at {kv:g} kV); check anode/tube_kv "
            "or give a manual calibration (two CHANNEL:KEV pairs) or an energy range"
        )
    best = distinct[0]
    runner_up = distinct[1].score if len(distinct) > 1 else None

    gain, offset, entries = _precise(best, obs, refs)
    if len([e for e in entries if e[3]]) < 2:
        gain, offset = best.gain, best.offset
    if not (g_lo * 0.8 <= gain <= g_hi * 1.2):
        raise CalibrationError(
            f"auto calibration diverged (gain {gain:.5f} keV/channel); give a manual "
            "calibration or an energy range"
        )
    peaks_out = [
        CalibrationPeak(
            name=ref.name,
            channel=float(c),
            keV=float(ref.keV),
            residual_eV=float((offset + gain * c - ref.keV) * 1e3),
            used=bool(used),
            kind=ref.kind,
        )
        for ref, c, _err, used in entries
    ]
    compton_keV, theta = _find_compton(spec, gain, offset, anode_ref, best.fwhm6)
    if compton_keV is not None and anode_ref is not None:
        peaks_out.append(
            CalibrationPeak(
                name=f"{anode_ref.name} Compton",
                channel=float((compton_keV - offset) / gain),
                keV=float(compton_keV),
                residual_eV=0.0,
                used=False,
                kind="compton",
            )
        )
    peaks_out.sort(key=lambda p: p.channel)
    used_res = [p.residual_eV for p in peaks_out if p.used]
    quality = {
        "score": float(best.score),
        "runner_up_score": None if runner_up is None else float(runner_up),
        "n_peaks_found": len(obs),
        "n_peaks_used": len(used_res),
        "rms_eV": float(np.sqrt(np.mean(np.square(used_res)))) if used_res else None,
        "fwhm_at_5.9keV_keV": float(best.fwhm6),
        "noise_scale": float(spec.scale),
    }
    return Calibration(
        gain_keV=float(gain),
        offset_keV=float(offset),
        peaks=peaks_out,
        method="auto",
        anode=anode_sym,
        tube_kv=kv,
        theta_deg=theta,
        compton_keV=compton_keV,
        quality=quality,
    )


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
        s = source.sum_spectrum
        s = s() if callable(s) else s
        m = getattr(source, "max_spectrum", None)
        m = m() if callable(m) else m
        return s, m, None, None
    if isinstance(source, tuple) and len(source) == 2:
        return source[0], source[1], None, None
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
        return source, None, None, None
    raise CalibrationError(f"cannot calibrate a {type(source).__name__}")


# ----------------------------------------------------------------------------- DataStack glue
def calibrate_datastack(
    ds: Any,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    manual: Sequence[tuple[float, float]] | str | None = None,
    keV_range: tuple[float, float] | str | None = None,
    store: bool = True,
) -> Calibration:
    """Calibrate a datastack from its sum and max spectra (or manually) and store it.

    The automatic search uses the sum spectrum (zero peak, anode Rayleigh and Compton) and
    the max spectrum (element peaks, strongest where they occur); a manual calibration
    (two channel/keV pairs, or the start/stop keV of the channel range) overrides it.

    Parameters
    ----------
    ds : DataStack
        A converted scan.
    anode, tube_kv : str, float
        X-ray tube anode element and voltage (kV).
    manual : sequence of (channel, keV) or str, optional
        Two or more channel/keV pairs, or ``"CH1:KEV1,CH2:KEV2"``.
    keV_range : (start_keV, stop_keV) or str, optional
        Energies of the first and last channel, or ``"START:STOP"``.
    store : bool
        Write the layer ``calibration`` (energies + the calibration as attrs).

    Returns
    -------
    Calibration
    """
    n = ds.shape[2]
    if manual is not None and keV_range is not None:
        raise CalibrationError("give either a manual calibration or a range, not both")
    if manual is not None:
        cal = manual_calibration(parse_manual(manual) if isinstance(manual, str) else manual)
    elif keV_range is not None:
        start, stop = parse_range(keV_range) if isinstance(keV_range, str) else keV_range
        cal = range_calibration(start, stop, n)
    else:
        cal = auto_calibrate(np.asarray(ds.sum_spectrum), np.asarray(ds.max_spectrum),
                             anode=anode, tube_kv=tube_kv)
    if store:
        ds.write_layer("calibration", {"energies": cal.energies(n)}, cal.to_dict())
    return cal


def calibrate_spectrum(
    path: Any,
    *,
    anode: str = "Rh",
    tube_kv: float | None = None,
    manual: Sequence[tuple[float, float]] | str | None = None,
    keV_range: tuple[float, float] | str | None = None,
) -> tuple[Calibration, tuple[float, float] | None]:
    """Calibrate a point spectrum file from its counts alone.

    Returns the calibration and, beside it, the file header's own ``(gain_keV,
    offset_keV)`` (reported, never used), or None.
    """
    from maxrf.io.spectra import read_spectrum

    spectrum = read_spectrum(path)
    counts = np.asarray(spectrum.counts, dtype=np.float64)
    if tube_kv is None:
        tube_kv = spectrum.tube_kv or 40.0
    if manual is not None and keV_range is not None:
        raise CalibrationError("give either a manual calibration or a range, not both", path)
    if manual is not None:
        cal = manual_calibration(parse_manual(manual) if isinstance(manual, str) else manual)
    elif keV_range is not None:
        start, stop = parse_range(keV_range) if isinstance(keV_range, str) else keV_range
        cal = range_calibration(start, stop, counts.size)
    else:
        cal = auto_calibrate(counts, None, anode=anode, tube_kv=tube_kv)
    return cal, spectrum.header_calibration
