"""Calibration results: :class:`Calibration` and :class:`CalibrationPeak`.

What every calibration method returns (a linear ``E = offset_keV + gain_keV * channel``
with the peaks it rests on), its JSON round trip (the ``calibration`` layer attrs of a
datastack), and the checks shared with the hand-made calibrations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maxrf.errors import CalibrationError, ParameterError


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
    quality : {'good', 'doubtful', 'failed'} or None
        The verdict of the consistency checks (:mod:`maxrf.calibration.quality`); None
        when nothing checked the calibration (set by hand without a spectrum).
    checks : list of dict
        The named checks: ``name``, ``passed``, ``message`` (a sentence), ``critical`` and
        the values they measured.
    diagnostics : dict
        Numbers of the automatic search (score, runner-up score, rms residual in eV,
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
    quality: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def residuals_eV(self) -> dict[str, float]:
        """Residual (eV) of every peak, by line name."""
        return {p.name: float(p.residual_eV) for p in self.peaks}

    def summary(self) -> str:
        """The verdict in words, with the failed checks (or the passed ones when good)."""
        if self.quality is None:
            return f"calibration {self.method}: not checked against a spectrum"
        failed = [c["message"] for c in self.checks if not c["passed"]]
        shown = failed if failed else [c["message"] for c in self.checks if c["passed"]][:4]
        word = {"good": "good", "doubtful": "DOUBTFUL", "failed": "FAILED"}.get(self.quality, self.quality)
        return f"calibration {word}: " + "; ".join(shown)

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
            "quality": self.quality,
            "checks": _json_safe(self.checks),
            "diagnostics": _json_safe(self.diagnostics),
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

        quality = d.get("quality")
        diagnostics = dict(d.get("diagnostics") or {})
        if isinstance(quality, Mapping):  # stores written before the verdict existed
            diagnostics, quality = dict(quality), None
        return cls(
            gain_keV=gain,
            offset_keV=offset,
            peaks=[CalibrationPeak.from_dict(p) for p in d.get("peaks") or []],
            method=str(d.get("method", d.get("source", "auto"))),
            anode=d.get("anode"),
            tube_kv=opt("tube_kv"),
            theta_deg=opt("theta_deg"),
            compton_keV=opt("compton_keV"),
            quality=quality,
            checks=[dict(c) for c in d.get("checks") or []],
            diagnostics=diagnostics,
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
