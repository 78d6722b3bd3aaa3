"""Calibrations set by hand or read: manual (channel, keV) pairs, an energy range, a header.

Also the parsers of the CLI strings: :func:`parse_manual` (``"CH1:KEV1,CH2:KEV2"``) and
:func:`parse_range` (``"START:STOP"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from maxrf.calibration.results import Calibration, CalibrationPeak, _check_gain
from maxrf.errors import CalibrationError


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
