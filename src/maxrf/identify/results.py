"""Result types of the identification: evidence per line, verdict per element, totals.

Holds :class:`LineEvidence`, :class:`ElementResult`, :class:`ObservedPeak`,
:class:`SpectrumIdentification` (one spectrum) and :class:`Identification` (a spectrum or
all hotmax spectra of a scan, with :meth:`Identification.to_dict` and
:meth:`Identification.table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maxrf import physics
from maxrf.identify.constants import TRACE_FRACTION


@dataclass
class LineEvidence:
    """How one line of an element fared in one spectrum.

    Attributes
    ----------
    element : str
        Chemical symbol.
    line : str
        Siegbahn name of the (merged) peak's strongest line (``'Ka1'``).
    iupac : str
        Its IUPAC name.
    keV : float
        Expected energy (keV).
    observed_keV : float or None
        Energy (keV) of the observed peak or residual that matches it; None if not seen.
    spectrum : int
        Index of the spectrum (hotmax spectrum; 0 for a single spectrum).
    expected_counts : float
        Fitted area (counts) of the line.
    visible : bool
        Expected to be seen: its fitted area is at least ``VISIBLE_Z`` standard errors of a
        local fit and its height rises above the noise envelope.
    seen : bool
        Actually observed: a local excess of at least ``LINE_Z_MIN`` sigma at the expected
        energy, of at least ``LINE_RATIO_MIN`` of the fitted area, above the envelope.
    local_z : float
        Local significance (sigma) of the line in the residual of the full model with the
        line's own fitted contribution added back.
    observed_counts : float
        Net counts of that local fit (a Gaussian at the expected energy over a straight
        background): what the spectrum holds there once every other line is taken out.
    """

    element: str
    line: str
    iupac: str
    keV: float
    observed_keV: float | None
    spectrum: int
    expected_counts: float
    visible: bool
    seen: bool
    local_z: float
    observed_counts: float = 0.0

    @property
    def verdict(self) -> str:
        """``'seen'``, ``'missed'`` (expected visible, not seen) or ``'weak'`` (too weak to
        be expected above the local counting noise: its absence says nothing)."""
        return "seen" if self.seen else ("missed" if self.visible else "weak")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "verdict": self.verdict,
            "observed_counts": round(float(self.observed_counts), 1),
            "line": self.line,
            "iupac": self.iupac,
            "keV": round(float(self.keV), 4),
            "observed_keV": None if self.observed_keV is None else round(float(self.observed_keV), 4),
            "spectrum": int(self.spectrum),
            "expected_counts": float(self.expected_counts),
            "visible": bool(self.visible),
            "seen": bool(self.seen),
            "local_z": round(float(self.local_z), 2),
        }


@dataclass
class ElementResult:
    """Verdict and evidence for one element.

    Attributes
    ----------
    element : str
        Chemical symbol.
    status : str
        ``'present'``, ``'possible'`` or ``'absent'``.
    confidence : float
        In [0, 1]: the probability that the element is there, from its status and raw score
        ``line_fraction * z**2 / (z**2 + Z_HALF**2)``
        (:func:`maxrf.identify.confidence.calibrated_confidence`).
    counts : float
        Fitted total area of its lines (counts).
    relative : float
        ``counts`` over those of the strongest element of the spectrum.
    z : float
        Fitted amplitude over its standard error.
    delta_chi2 : float
        Chi-square increase when the element is removed from the final model.
    line_fraction : float
        Intensity-weighted share of its expected-visible lines actually seen.
    lines : list of LineEvidence
        Its visible or seen lines.
    spectra : list of int
        Spectra where it has this status (for a datastack: hotmax spectra indices).
    """

    element: str
    status: str
    confidence: float
    counts: float
    relative: float
    z: float
    delta_chi2: float
    line_fraction: float
    lines: list[LineEvidence] = field(default_factory=list)
    spectra: list[int] = field(default_factory=list)

    @property
    def trace(self) -> bool:
        """Fitted counts below :data:`TRACE_FRACTION` of the strongest element."""
        return self.relative < TRACE_FRACTION

    def line_summary(self) -> list[LineEvidence]:
        """One record per line (by energy): from the spectrum where the line was expected
        strongest -- what a user checks first (seen there, or missed there)."""
        best: dict[str, LineEvidence] = {}
        for ln in self.lines:
            cur = best.get(ln.line)
            key = (ln.visible or ln.seen, ln.expected_counts)
            if cur is None or key > (cur.visible or cur.seen, cur.expected_counts):
                best[ln.line] = ln
        return sorted(best.values(), key=lambda ln: ln.keV)

    def evidence_text(self, max_lines: int = 8) -> str:
        """``'seen Ka1 6.40 keV (expected 1200, observed 1185, spectrum 3); missed ...'``."""
        parts = {"seen": [], "missed": [], "weak": []}
        for ln in self.line_summary():
            parts[ln.verdict].append(
                f"{ln.line} {ln.keV:.2f} keV (expected {ln.expected_counts:.0f}, observed "
                f"{ln.observed_counts:.0f}, spectrum {ln.spectrum})"
            )
        out = []
        for verdict in ("seen", "missed"):
            items = parts[verdict]
            if items:
                more = f" +{len(items) - max_lines}" if len(items) > max_lines else ""
                out.append(f"{verdict}: " + ", ".join(items[:max_lines]) + more)
        return "; ".join(out) or "no line expected above the counting noise"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the ``elements`` entries of :meth:`Identification.to_dict`)."""
        return {
            "element": self.element,
            "status": self.status,
            "confidence": round(float(self.confidence), 4),
            "counts": float(self.counts),
            "relative": float(self.relative),
            "trace": bool(self.trace),
            "z": round(float(self.z), 2),
            "delta_chi2": round(float(self.delta_chi2), 2),
            "line_fraction": round(float(self.line_fraction), 3),
            "spectra": [int(s) for s in self.spectra],
            "lines": [ln.to_dict() for ln in self.lines],
            "line_summary": [ln.to_dict() for ln in self.line_summary()],
        }


@dataclass
class ObservedPeak:
    """An observed peak of a spectrum and what explains it.

    Attributes
    ----------
    keV : float
        Energy (keV).
    channel : int
        Channel of the maximum.
    height : float
        Net height (counts above the baseline).
    label : str
        Best explanation (``'Fe Ka1'``, ``'Rh Ka1 Compton'``...), ``'?'`` if unexplained.
    kind : str
        ``'element'``, an instrument kind, or ``'unexplained'``.
    explained : float
        Share of the net height the final model accounts for.
    """

    keV: float
    channel: int
    height: float
    label: str
    kind: str
    explained: float


@dataclass
class SpectrumIdentification:
    """Identification of one spectrum, with the fitted model for plots.

    Attributes
    ----------
    index : int
        Spectrum index (hotmax spectrum number, 0 for a single spectrum).
    elements : dict of str to ElementResult
        Every candidate element.
    instrument : list of dict
        Instrument peaks seen: ``{'name', 'keV', 'kind', 'counts'}``.
    peaks : list of ObservedPeak
        Observed peaks with their labels.
    unexplained_keV : list of float
        Observed peaks the final model does not explain.
    energies, counts, baseline, envelope, model : numpy.ndarray
        ``(C,)`` axis (keV), spectrum, baseline, noise envelope and fitted model (baseline
        included).
    fwhm_at_6keV : float
        Detector resolution used (keV at 5.9 keV).
    theta_deg : float
        Scattering angle used (degrees).
    chi2_reduced : float
        Reduced chi-square of the final model over the fitted range.
    unexplained_counts : list of float
        Net counts the model leaves within one FWHM of each unexplained peak.
    """

    index: int
    elements: dict[str, ElementResult]
    instrument: list[dict[str, Any]]
    peaks: list[ObservedPeak]
    unexplained_keV: list[float]
    energies: np.ndarray
    counts: np.ndarray
    baseline: np.ndarray
    envelope: np.ndarray
    model: np.ndarray
    fwhm_at_6keV: float
    theta_deg: float
    chi2_reduced: float
    unexplained_counts: list[float] = field(default_factory=list)

    def present(self) -> list[str]:
        """Present elements, strongest confidence first."""
        els = [r for r in self.elements.values() if r.status == "present"]
        return [r.element for r in sorted(els, key=lambda r: -r.confidence)]


@dataclass
class Identification:
    """Elements and instrument peaks of a spectrum or of all hotmax spectra of a scan.

    Attributes
    ----------
    elements : list of ElementResult
        Present first, then possible, then absent candidates; by confidence.
    instrument : list of dict
        ``{'name', 'keV', 'kind', 'spectra'}`` instrument peaks seen.
    unexplained_keV : list of float
        Observed peaks no element or instrument peak explains (keV).
    anode : str
        Tube anode.
    tube_kv : float
        Tube voltage (kV).
    spectra : list of SpectrumIdentification
        Per-spectrum results (the fitted models, for plots).
    source : str
        What was identified (path or description).
    unexplained_counts : list of float
        Net counts left unexplained at each of ``unexplained_keV`` (the largest over the
        spectra where the peak is).
    """

    elements: list[ElementResult]
    instrument: list[dict[str, Any]]
    unexplained_keV: list[float]
    anode: str
    tube_kv: float
    spectra: list[SpectrumIdentification] = field(default_factory=list)
    source: str = ""
    unexplained_counts: list[float] = field(default_factory=list)

    def __getitem__(self, element: str) -> ElementResult:
        sym = physics.normalize_element(element)
        for r in self.elements:
            if r.element == sym:
                return r
        raise KeyError(element)

    def status(self, element: str) -> str:
        """``'present'``, ``'possible'`` or ``'absent'`` (also for elements never considered)."""
        try:
            return self[element].status
        except KeyError:
            return "absent"

    @property
    def present(self) -> list[str]:
        """Present elements, by confidence."""
        return [r.element for r in self.elements if r.status == "present"]

    @property
    def possible(self) -> list[str]:
        """Possible elements, by confidence."""
        return [r.element for r in self.elements if r.status == "possible"]

    def to_dict(self, *, absent: bool = True) -> dict[str, Any]:
        """JSON-safe result (the ``identification`` layer's attrs).

        Parameters
        ----------
        absent : bool
            Include the candidates found absent.

        Returns
        -------
        dict
            ``{'elements': [...], 'instrument': [...], 'unexplained_keV': [...],
            'anode', 'tube_kv', 'fwhm_at_6keV', 'theta_deg', 'n_spectra', 'trace_fraction',
            'source', 'spectrum_peaks'}``; ``spectrum_peaks[n]`` lists the observed peaks of
            spectrum ``n`` as ``{'keV', 'label', 'kind'}`` (what explains each).
        """
        els = [r.to_dict() for r in self.elements if absent or r.status != "absent"]
        fw = [s.fwhm_at_6keV for s in self.spectra]
        th = [s.theta_deg for s in self.spectra]
        return {
            "elements": els,
            "instrument": [dict(p) for p in self.instrument],
            "unexplained_keV": [round(float(v), 3) for v in self.unexplained_keV],
            "unexplained": [
                {"keV": round(float(v), 3), "counts": round(float(c), 1)}
                for v, c in zip(self.unexplained_keV, self._unexplained_counts())
            ],
            "anode": self.anode,
            "tube_kv": float(self.tube_kv),
            "fwhm_at_6keV": float(np.median(fw)) if fw else None,
            "theta_deg": float(np.median(th)) if th else None,
            "n_spectra": len(self.spectra),
            "trace_fraction": TRACE_FRACTION,
            "source": self.source,
            "spectrum_peaks": [
                [{"keV": round(float(p.keV), 4), "label": p.label, "kind": p.kind} for p in s.peaks]
                for s in self.spectra
            ],
        }

    def evidence(self, *, absent: bool = False) -> str:
        """Per element, the lines seen and missed with expected and observed counts."""
        out = []
        for r in self.elements:
            if r.status == "absent" and not absent:
                continue
            out.append(f"{r.element} ({r.status}, {r.confidence:.2f}): {r.evidence_text()}")
        return "\n".join(out)

    def _unexplained_counts(self) -> list[float]:
        c = list(self.unexplained_counts)
        return c + [float("nan")] * (len(self.unexplained_keV) - len(c))

    def table(self, *, absent: bool = False) -> str:
        """Human-readable table: element, status, confidence, relative counts, lines."""
        rows = [("element", "status", "confidence", "relative", "lines (keV, spectrum)")]
        for r in self.elements:
            if r.status == "absent" and not absent:
                continue
            seen = [ln for ln in r.lines if ln.seen]
            shown: dict[str, LineEvidence] = {}
            for ln in seen:
                shown.setdefault(ln.line, ln)
            items = sorted(shown.values(), key=lambda ln: ln.keV)
            lines = ", ".join(f"{ln.line} {ln.keV:.2f}" for ln in items[:8])
            if len(items) > 8:
                lines += f" +{len(items) - 8}"
            specs = sorted({ln.spectrum for ln in seen})
            if len(self.spectra) > 1 and specs:
                more = "" if len(specs) <= 6 else f" +{len(specs) - 6}"
                lines += f"  [spectra {', '.join(map(str, specs[:6]))}{more}]"
            rel = f"{r.relative:.3g}" + (" trace" if r.status == "present" and r.trace else "")
            rows.append((r.element, r.status, f"{r.confidence:.2f}", rel, lines))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        out = []
        for row in rows:
            out.append("  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4])
        if self.instrument:
            inst = ", ".join(f"{p['name']} {p['keV']:.2f}" for p in self.instrument[:12])
            more = "" if len(self.instrument) <= 12 else f" (+{len(self.instrument) - 12})"
            out.append(f"instrument: {inst}{more}")
        if self.unexplained_keV:
            out.append("unexplained peaks (keV, net counts): " + ", ".join(
                f"{v:.2f} ({c:.0f})" for v, c in zip(self.unexplained_keV, self._unexplained_counts())))
        return "\n".join(out)
