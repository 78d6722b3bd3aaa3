"""The whole workflow on one datastack: calibrate, hotmax, identify, maps, speckles, report.

Each step is the library call a notebook would make; :func:`run_pipeline` chains them and
is what ``maxrf demo`` and the large benchmark run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maxrf.store import DataStack, open_datastack
from maxrf.types import ClientLike

STEPS = ("calibrate", "hotmax", "identify", "maps", "speckles", "report")


def present_elements(ds: DataStack) -> list[str]:
    """Elements the stored identification calls ``present``."""
    if "identification" not in ds.layers:
        return []
    elements = ds.read("identification").attrs.get("elements", [])
    return [e["element"] for e in elements if e.get("status") == "present"]


def run_pipeline(
    ds: DataStack | str | os.PathLike,
    *,
    anode: str = "Rh",
    tube_kv: float = 40.0,
    speckle_element: str = "Fe",
    report: str | os.PathLike | None = None,
    client: ClientLike = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every analysis step on a converted scan and store each layer.

    Parameters
    ----------
    ds : DataStack or path
        A converted scan.
    anode, tube_kv : str, float
        X-ray tube anode and voltage (kV).
    speckle_element : str
        Element whose map is searched for speckles (skipped if it is not identified).
    report : path, optional
        Where to write the HTML report (default ``NAME.report.html`` beside the datastack).
    client : dask.distributed.Client or str, optional
        Run every read of the cube (the maps pass, the hotmax pixel spectra) on this
        cluster (or scheduler address; default ``MAXRF_SCHEDULER``, else local threads).
        The other steps work on the stored spectra and layers only.
    log : callable, optional
        Called with a one-line message after each step (the CLI prints them).

    Returns
    -------
    dict
        ``{"datastack", "elements", "report", "speckles"}``.
    """
    from maxrf.calibration import calibrate_datastack
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.identify import identify
    from maxrf.maps import compute_maps
    from maxrf.report import write_report
    from maxrf.speckles import find_speckles

    ds = open_datastack(ds)
    say = log or (lambda _msg: None)
    if ds.calibration is None:
        calibrate_datastack(ds, anode=anode, tube_kv=tube_kv)
    cal = ds.calibration
    say(f"calibration: E = {cal['offset_keV']:.4f} + {cal['gain_keV']:.6f} x channel keV")
    atlas = HotmaxAtlas(ds, recompute=True, client=client)
    say(f"hotmax atlas: {len(atlas.hotmax_spectra)} spectra from {len(atlas.hotmax_pixels)} peaks")
    identify(ds, anode=anode, tube_kv=tube_kv)
    elements = present_elements(ds)
    say(f"identified: {', '.join(elements) or 'no element'}")
    compute_maps(ds, peaks=True, elements=elements, method="fit", client=client, store=True)
    say(f"maps: peak maps and {len(elements)} fitted element maps")
    n_speckles = None
    if speckle_element in elements:
        table = find_speckles(ds, speckle_element).table
        n_speckles = len(table["label"])
        say(f"speckles: {n_speckles} {speckle_element} speckles")
    report = Path(report) if report else ds.path.with_suffix(".report.html")
    write_report(ds, report)
    say(f"report: {report}")
    return {"datastack": str(ds.path), "elements": elements, "report": str(report),
            "speckles": n_speckles}
