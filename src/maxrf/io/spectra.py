"""Single point spectra: EMSA/MAS ``.msa`` and Bruker ``.spx`` files.

Both formats are parsed by RosettaSciIO; this module turns the result into one plain
:class:`Spectrum` (counts, energy axis in keV, times, tube settings) and turns every
problem into a :mod:`maxrf.errors` exception that names the file.

Examples
--------
>>> from maxrf.io.spectra import read_spectrum
>>> s = read_spectrum("Fe_50kv_Rh_vac.msa")            # doctest: +SKIP
>>> s.counts.shape, s.header_calibration                # doctest: +SKIP
((4096,), (0.009999, -0.9553045))
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import MissingFileError, SpectrumFormatError

__all__ = ["Spectrum", "read_spectrum", "SUPPORTED_SUFFIXES"]

#: File name endings :func:`read_spectrum` understands (lower case).
SUPPORTED_SUFFIXES = (".msa", ".emsa", ".txt", ".spx")

# anode symbols recognised in titles such as "Fe_50kv_50_ma_Rh_vac"
_ANODES = ("Rh", "Mo", "W", "Ag", "Cr", "Cu", "Pd", "Au", "Ti", "Co", "Fe", "Ta")
_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm "
    "Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th "
    "Pa U"
).split()


@dataclass
class Spectrum:
    """One measured X-ray spectrum.

    Attributes
    ----------
    counts : numpy.ndarray
        Counts per channel, float64, C-contiguous, shape ``(n_channels,)``.
    energies_keV : numpy.ndarray or None
        Energy of each channel (keV) from the file's calibration, or None when the file
        carries no usable calibration.
    header_calibration : tuple of float or None
        ``(gain_keV, offset_keV)`` with ``energy(i) = offset_keV + gain_keV * i`` (keV per
        channel, keV), or None.
    live_time_s, real_time_s : float or None
        Acquisition live and real time (s).
    tube_kv : float or None
        X-ray tube voltage (kV).
    tube_current_uA : float or None
        X-ray tube current (µA).
    anode : str or None
        Tube anode element symbol (e.g. ``'Rh'``).
    title : str
        Title stored in the file (or the file name).
    path : pathlib.Path
        The file read.
    metadata : dict
        Everything else: ``'format'``, ``'original'`` (the file's own header keys), and
        ``'sources'`` saying where derived values (tube voltage, anode...) came from.
    """

    counts: np.ndarray
    energies_keV: np.ndarray | None
    header_calibration: tuple[float, float] | None
    live_time_s: float | None
    real_time_s: float | None
    tube_kv: float | None
    tube_current_uA: float | None
    anode: str | None
    title: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.counts.shape[0])

    @property
    def tube_ua(self) -> float | None:
        """Alias of :attr:`tube_current_uA` (µA)."""
        return self.tube_current_uA


# --------------------------------------------------------------------------- helpers


def _float_or_none(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None."""
    if value is None:
        return None
    try:
        out = float(str(value).strip().split()[0]) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return out if math.isfinite(out) else None


def _to_keV(value: float | None, units: str | None) -> float | None:
    """Convert an energy ``value`` given in ``units`` ('eV', 'keV', 'MeV') to keV."""
    if value is None:
        return None
    u = (units or "keV").strip().lower()
    if u == "ev":
        return value / 1000.0
    if u == "mev":
        return value * 1000.0
    return value


def _from_title(title: str) -> dict[str, Any]:
    """Tube voltage (kV), current (µA) and anode parsed from a title such as
    ``'Fe_50kv_50_ma_Rh_vac'``; only what is clearly there."""
    out: dict[str, Any] = {}
    m = re.search(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*_?kv(?![a-z])", title, re.IGNORECASE)
    if m is None:
        return out
    out["tube_kv"] = float(m.group(1))
    rest = title[m.end() :]
    mc = re.search(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*_?(ma|ua|µa)(?![a-z])", rest, re.IGNORECASE)
    if mc is not None:
        value = float(mc.group(1))
        out["tube_current_uA"] = value * 1000.0 if mc.group(2).lower() == "ma" else value
    # an anode symbol standing as its own token after the voltage
    for token in re.split(r"[\s_\-,;()]+", rest):
        if token in _ANODES:
            out["anode"] = token
            break
    return out


def _check_counts(data: Any, path: Path) -> np.ndarray:
    """Validate a reader's data array and return it as 1-D float64."""
    try:
        counts = np.ascontiguousarray(np.asarray(data, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise SpectrumFormatError(f"spectrum data are not numbers ({exc})", path) from None
    counts = np.squeeze(counts)
    if counts.ndim != 1:
        raise SpectrumFormatError(f"expected one spectrum, found data of shape {counts.shape}", path)
    if counts.size < 2:
        raise SpectrumFormatError("the file holds no spectrum data", path)
    if not np.all(np.isfinite(counts)):
        raise SpectrumFormatError("the spectrum holds non-finite values", path)
    return counts


def _calibration(axis: dict[str, Any], units_hint: str | None) -> tuple[float, float] | None:
    """(gain_keV, offset_keV) from a RosettaSciIO axis dict, or None."""
    units = axis.get("units") or units_hint
    if not units or str(units).strip().lower() not in ("ev", "kev", "mev"):
        return None
    gain = _to_keV(_float_or_none(axis.get("scale")), str(units))
    offset = _to_keV(_float_or_none(axis.get("offset")), str(units))
    if gain is None or offset is None or gain <= 0:
        return None
    return float(gain), float(offset)


# --------------------------------------------------------------------------- readers


def _first_item(file_reader: Any, path: Path, kind: str) -> dict:
    """The first signal rosettasciio reads from ``path``; none of its exceptions leak."""
    try:
        return file_reader(os.fspath(path))[0]
    except Exception as exc:
        raise SpectrumFormatError(
            f"not a readable {kind} ({type(exc).__name__}: {exc})", path
        ) from None


def _read_msa(path: Path) -> Spectrum:
    from rsciio.msa import file_reader

    item = _first_item(file_reader, path, "EMSA/MAS spectrum")
    original = dict(item.get("original_metadata") or {})
    if not original.get("NPOINTS") and len(np.asarray(item.get("data", []))) == 0:
        raise SpectrumFormatError("not an EMSA/MAS spectrum (no #NPOINTS header and no #SPECTRUM data)", path)
    counts = _check_counts(item.get("data"), path)
    axes = item.get("axes") or [{}]
    calib = _calibration(axes[0], original.get("XUNITS"))

    def orig(*names: str) -> Any:
        for key, value in original.items():
            clean = key.split("-")[0].strip().upper()
            if clean in names:
                return value
        return None

    title = str(original.get("TITLE") or path.stem)
    sources: dict[str, str] = {}
    tube_kv = _float_or_none(orig("BEAMKV"))
    if tube_kv is not None:
        sources["tube_kv"] = "BEAMKV"
    current = _float_or_none(orig("PROBECUR", "EMISSION"))
    if current is not None:
        sources["tube_current_uA"] = "PROBECUR (nA -> µA)"
        current = current / 1000.0  # EMSA PROBECUR is in nA
    parsed = _from_title(title)
    anode = None
    if tube_kv is None and "tube_kv" in parsed:
        tube_kv = parsed["tube_kv"]
        sources["tube_kv"] = "title"
    if current is None and "tube_current_uA" in parsed:
        current = parsed["tube_current_uA"]
        sources["tube_current_uA"] = "title"
    if "anode" in parsed:
        anode = parsed["anode"]
        sources["anode"] = "title"
    return Spectrum(
        counts=counts,
        energies_keV=None,
        header_calibration=calib,
        live_time_s=_float_or_none(orig("LIVETIME")),
        real_time_s=_float_or_none(orig("REALTIME")),
        tube_kv=tube_kv,
        tube_current_uA=current,
        anode=anode,
        title=title,
        path=path,
        metadata={"format": "msa", "original": original, "sources": sources},
    )


def _xrf_header(path: Path) -> dict[str, str]:
    """Text of the ``TRTXrfHeader`` children of a Bruker .spx (RosettaSciIO drops the
    tube current and anode)."""
    try:
        root = ET.parse(os.fspath(path)).getroot()
    except (ET.ParseError, OSError):
        return {}
    node = root.find(".//ClassInstance[@Type='TRTXrfHeader']")
    if node is None:
        return {}
    return {child.tag: (child.text or "").strip() for child in node}


def _read_spx(path: Path) -> Spectrum:
    from rsciio.bruker import file_reader

    item = _first_item(file_reader, path, "Bruker .spx spectrum")
    counts = _check_counts(item.get("data"), path)
    axes = item.get("axes") or [{}]
    calib = _calibration(axes[0], "keV")
    metadata = item.get("metadata") or {}
    original = item.get("original_metadata") or {}
    live = real = None
    tube_kv = None
    for mode in (metadata.get("Acquisition_instrument") or {}).values():
        det = ((mode or {}).get("Detector") or {}).get("EDS") or {}
        live = _float_or_none(det.get("live_time"))
        real = _float_or_none(det.get("real_time"))
        tube_kv = _float_or_none((mode or {}).get("beam_energy"))
    xrf = _xrf_header(path)
    sources: dict[str, str] = {}
    if tube_kv is not None:
        sources["tube_kv"] = "TRTXrfHeader/Voltage"
    current = _float_or_none(xrf.get("Current"))
    if current is not None:
        sources["tube_current_uA"] = "TRTXrfHeader/Current"
    anode = None
    z = _float_or_none(xrf.get("Anode"))
    if z is not None and 1 <= int(z) <= len(_SYMBOLS):
        anode = _SYMBOLS[int(z) - 1]
        sources["anode"] = "TRTXrfHeader/Anode"
    general = metadata.get("General") or {}
    sample = (metadata.get("Sample") or {}).get("name")
    title = str(sample or general.get("title") or path.stem)
    return Spectrum(
        counts=counts,
        energies_keV=None,
        header_calibration=calib,
        live_time_s=live,
        real_time_s=real,
        tube_kv=tube_kv,
        tube_current_uA=current,
        anode=anode,
        title=title,
        path=path,
        metadata={"format": "spx", "original": original, "xrf": xrf, "sources": sources},
    )


def read_spectrum(path: str | os.PathLike) -> Spectrum:
    """Read one point spectrum from an EMSA/MAS (``.msa``) or Bruker ``.spx`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The spectrum file. ``.msa``/``.emsa``/``.txt`` are read as EMSA/MAS, ``.spx`` as
        Bruker XML spectra.

    Returns
    -------
    Spectrum
        Counts (float64), and when the header has them: the energy axis (keV), the header
        calibration ``(gain_keV, offset_keV)``, live/real time (s), tube voltage (kV),
        current (µA) and anode. For EMSA files without ``#BEAMKV`` the tube voltage, current
        and anode are taken from a title such as ``Fe_50kv_50_ma_Rh_vac`` when they are
        clearly there (``metadata['sources']`` records it).

    Raises
    ------
    MissingFileError
        ``path`` does not exist.
    SpectrumFormatError
        The file is a folder, empty, of an unsupported type, or not a valid spectrum.
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError("spectrum file not found", p)
    if p.is_dir():
        raise SpectrumFormatError("is a folder, not a spectrum file", p)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise SpectrumFormatError(
            f"unsupported spectrum file type {suffix or '(no extension)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}",
            p,
        )
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise SpectrumFormatError(f"cannot be read ({exc.strerror})", p) from None
    if size == 0:
        raise SpectrumFormatError("the file is empty", p)
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise SpectrumFormatError(f"cannot be read ({exc.strerror})", p) from None
    spectrum = _read_spx(p) if suffix == ".spx" else _read_msa(p)
    if spectrum.header_calibration is not None:
        gain, offset = spectrum.header_calibration
        spectrum.energies_keV = offset + gain * np.arange(spectrum.n_channels, dtype=np.float64)
    return spectrum
