"""Line energies the seed's notebooks use by name (keV), with maxrf4u's values.

maxrf4u defines ``RHODIUM_Ka`` and ``IRON_Ka`` (the KL3 lines) in its calibration module;
the notebooks compare energies with them. The other names follow the same pattern
(element's English name, line), from xraydb's tables (the strongest line of the group).
"""

from __future__ import annotations

RHODIUM_Ka = 20.210105052526263
"""Rh Kα (KL3), keV: maxrf4u's value (xraydb: 20.216)."""

IRON_Ka = 6.4032016008004
"""Fe Kα (KL3), keV: maxrf4u's value (xraydb: 6.4039)."""


def _line(element: str, line: str) -> float:
    from maxrf.physics import line_energy

    return float(line_energy(element, line))


_NAMED = {
    "CALCIUM_Ka": ("Ca", "Ka"), "TITANIUM_Ka": ("Ti", "Ka"), "MANGANESE_Ka": ("Mn", "Ka"),
    "IRON_Kb": ("Fe", "Kb"), "COPPER_Ka": ("Cu", "Ka"), "ZINC_Ka": ("Zn", "Ka"),
    "LEAD_La": ("Pb", "La"), "LEAD_Lb": ("Pb", "Lb"), "RHODIUM_Kb": ("Rh", "Kb"),
    "POTASSIUM_Ka": ("K", "Ka"), "MERCURY_La": ("Hg", "La"), "ARSENIC_Ka": ("As", "Ka"),
}


def __getattr__(name: str) -> float:
    if name in _NAMED:
        return _line(*_NAMED[name])
    raise AttributeError(name)


__all__ = ["IRON_Ka", "RHODIUM_Ka", *_NAMED]
