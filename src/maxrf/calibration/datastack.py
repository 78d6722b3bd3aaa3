"""DataStack and spectrum-file glue: :func:`calibrate_datastack`, :func:`calibrate_spectrum`.

Calibrate a converted scan from its sum and max spectra (or by hand) and store the
``calibration`` layer; calibrate a point spectrum file from its counts alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from maxrf.calibration.auto import auto_calibrate
from maxrf.calibration.manual import manual_calibration, parse_manual, parse_range, range_calibration
from maxrf.calibration.results import Calibration
from maxrf.errors import CalibrationError


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
        header = ds.metadata.get("header_calibration") if hasattr(ds, "metadata") else None
        cal = auto_calibrate(np.asarray(ds.sum_spectrum), np.asarray(ds.max_spectrum),
                             anode=anode, tube_kv=tube_kv, header=None if header is None else tuple(header))
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
        cal = auto_calibrate(counts, None, anode=anode, tube_kv=tube_kv, header=spectrum.header_calibration)
    return cal, spectrum.header_calibration
