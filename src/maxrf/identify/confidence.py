"""Calibrated confidence of an element call (step 6 of the notes).

The tests of :mod:`maxrf.identify.selection` give each element a status and a raw score
``line_fraction * z**2 / (z**2 + Z_HALF**2)`` in [0, 1]. The raw score alone does not say
how often an element is really there: a "possible" element with every line seen and a
high ``z`` used to outrank a present one. :func:`calibrated_confidence` maps it into a
band per status, so that

* a present element always outranks a possible one, and a possible one an absent one
  (same evidence, same order -- the bands do not overlap);
* within a band the raw score orders the elements;
* the confidence means what it says: over synthetic scans with known truth (the
  development seeds of ``benchmarks/identify_scans.py``, never the measured ones), of the
  elements given confidence ``p`` a fraction close to ``p`` was present. The bands
  (:data:`CONFIDENCE_BANDS`) were read off that reliability curve (development seeds
  0..29): present calls were right in 175 of 176 cases, possible calls in 1 of 14,
  absent candidates (whose lines were sought and not found) in 0 of 821. "Possible" thus
  means "worth a look, usually not there".

The held-out reliability curve is saved in ``benchmarks/results/identify.json``
(``holdout.reliability``).
"""

from __future__ import annotations

#: confidence range of each status: ``(low, high)``; the raw score in [0, 1] is mapped
#: linearly into it
CONFIDENCE_BANDS: dict[str, tuple[float, float]] = {
    "present": (0.95, 1.0),
    "possible": (0.03, 0.15),
    "absent": (0.0, 0.02),
}


def calibrated_confidence(status: str, raw: float) -> float:
    """Confidence (probability that the element is there) of a call.

    Parameters
    ----------
    status : str
        ``'present'``, ``'possible'`` or ``'absent'``.
    raw : float
        Raw score in [0, 1] (line fraction times the significance term).

    Returns
    -------
    float
        In the status's band of :data:`CONFIDENCE_BANDS`.
    """
    lo, hi = CONFIDENCE_BANDS[status]
    r = min(max(float(raw), 0.0), 1.0)
    return lo + (hi - lo) * r
