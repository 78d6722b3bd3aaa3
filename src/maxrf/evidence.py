"""What the stored identification says about an element, and refusing maps without it.

A map, speckle table or segmentation "of As" on a scan without arsenic is not a map of
arsenic: a peak window near As Ka (10.54 keV) holds Pb La, and a fitted map of an absent
element holds noise. Commands that take an element therefore ask :func:`require_evidence`
first; a user who wants an energy window regardless says so with an explicit window
(``--window KEV1:KEV2``), which :func:`parse_window` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maxrf.errors import ParameterError

PRESENT = "present"
POSSIBLE = "possible"
ABSENT = "absent"
UNKNOWN = "unknown"


class EvidenceError(ParameterError):
    """A result was asked for an element the scan shows no evidence of."""


def element_evidence(ds: Any, element: str) -> str:
    """``'present'``, ``'possible'``, ``'absent'`` from the stored identification, or
    ``'unknown'`` when the scan has no ``identification`` layer.

    An element the identification does not list at all counts as ``'absent'``.
    """
    from maxrf.physics import normalize_element

    element = normalize_element(element)
    if "identification" not in ds.layers:
        return UNKNOWN
    for entry in ds.read("identification").attrs.get("elements", []):
        if isinstance(entry, Mapping) and str(entry.get("element", "")).strip() == element:
            status = str(entry.get("status", "")).strip().lower()
            return status if status in (PRESENT, POSSIBLE) else ABSENT
    return ABSENT


def element_statuses(ds: Any) -> dict[str, str]:
    """``{element: 'present' | 'possible'}`` of the stored identification (empty without one)."""
    out: dict[str, str] = {}
    if "identification" in ds.layers:
        for entry in ds.read("identification").attrs.get("elements", []):
            if isinstance(entry, Mapping):
                status = str(entry.get("status", "")).strip().lower()
                if status in (PRESENT, POSSIBLE):
                    out[str(entry.get("element", "")).strip()] = status
    return out


#: how to ask for a window map regardless, in Python and on the command line
WINDOW_HOW = ("give an energy window (window=(KEV1, KEV2); --window KEV1:KEV2 on the command "
              "line) to use one")


def require_evidence(ds: Any, element: str, what: str = "map", how: str = WINDOW_HOW) -> str:
    """The element's evidence, or :class:`EvidenceError` when the scan shows none.

    ``'present'`` and ``'possible'`` pass (the caller labels a possible element as
    such); ``'unknown'`` (no identification stored) passes when the datastack holds a
    fitted/window map of the element, which the user asked for by name, or no map at all
    (the caller then says which maps to compute), not when only a peak map near the
    element's line could stand in for it. ``how`` (the error's advice, followed by
    "anyway") says how the caller's user asks for the result regardless.

    Raises
    ------
    EvidenceError
        The identification does not find the element, or nothing identified it and no
        element map of it is stored.
    """
    from maxrf.physics import normalize_element

    element = normalize_element(element)
    status = element_evidence(ds, element)
    if status in (PRESENT, POSSIBLE):
        return status
    if status == UNKNOWN:
        layers = ds.layers
        mapped = "element_maps" in layers and element in ds.read(
            "element_maps", lazy=True).attrs.get("elements", [])
        if mapped or "peak_maps" not in layers:  # the map asked for by name, or none at all
            return status
        raise EvidenceError(
            f"no evidence of {element} in this scan (no identification stored): run "
            f"'maxrf identify' first, or {how} anyway",
            ds.path)
    raise EvidenceError(
        f"no {what} of {element}: the identification does not find {element} in this scan "
        f"({how} anyway)", ds.path)


def checked_map(ds: Any, element: str, window: tuple[float, float] | None = None,
                what: str = "map") -> tuple[Any, str]:
    """The map a per-element result (speckles, segmentation) is computed on, and its source.

    With ``window`` (keV, low and high): the peak map of that window, whatever the
    identification says (the user made the choice explicit). Without: the element's map
    (:func:`maxrf.speckles.element_map_of`) after :func:`require_evidence`, so an element
    the scan shows no sign of is refused with one line rather than answered with the map
    of whatever peak lies near its line.

    Raises
    ------
    EvidenceError
        No evidence of ``element`` and no ``window``.
    LayerMissingError
        No map of ``element`` stored.
    """
    from maxrf.speckles import element_map_of, window_map

    if window is not None:
        return window_map(ds, window)
    require_evidence(ds, element, what)
    return element_map_of(ds, element)


def parse_window(text: str) -> tuple[float, float]:
    """``'10.3:10.8'`` -> ``(10.3, 10.8)`` keV, checked (two numbers, low < high, >= 0)."""
    try:
        lo, hi = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise ParameterError(f"--window: give KEV1:KEV2 (e.g. 6.2:6.6), got {text!r}") from None
    if not (0 <= lo < hi):
        raise ParameterError(f"--window: need 0 <= KEV1 < KEV2, got {text!r}")
    return lo, hi


def label(element: str, status: str) -> str:
    """The element as shown to people: ``'Re?'`` for a possible element, else ``'Re'``."""
    return f"{element}?" if status == POSSIBLE else element


def stored_summary(ds: Any) -> dict[str, Any]:
    """What a datastack holds for people: identified elements by status and the runs its
    element maps come from (``maxrf info``).

    Returns
    -------
    dict
        ``{"present": [...], "possible": [...], "element_map_runs": {run: [elements]}}``.
    """
    from maxrf.runs import runs_of

    out: dict[str, Any] = {"present": [], "possible": [], "element_map_runs": {}}
    for element, status in element_statuses(ds).items():
        out[status].append(element)
    if "element_maps" in ds.layers:
        for el, run in runs_of(dict(ds.read("element_maps", lazy=True).attrs)).items():
            key = f"{run.get('run', 'earlier run')} ({run.get('method', '?')})"
            out["element_map_runs"].setdefault(key, []).append(el)
    return out
