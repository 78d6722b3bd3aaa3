"""The embedded default scan and the end-to-end demo (``maxrf demo``, ``make demo``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from maxrf.types import ClientLike

DEMO_SCAN = {
    "height": 96, "width": 128, "channels": 2048, "seed": 2026,
    "elements": ["Ca", "Fe", "Cu", "Zn", "Pb", "Ti", "K", "Mn"],
    "n_speckles": 10, "speckle_element": "Fe", "particle": True,
    "particle_elements": ("Cu", "Zn"), "counts_per_pixel": 3000,
}
"""Parameters of the embedded default scan (a synthetic drawing on paper)."""


def run_demo(folder: str | os.PathLike = "demo-output",
             log: Callable[[str], None] | None = None, client: ClientLike = None) -> dict[str, Any]:
    """Generate the default scan in ``folder`` and run the whole workflow on it.

    ``client`` (a dask.distributed Client or scheduler address) runs convert and the
    pipeline's reads of the cube on that cluster. Returns the
    :func:`maxrf.pipeline.run_pipeline` summary, with the report path.
    """
    from maxrf.convert import convert
    from maxrf.pipeline import run_pipeline
    from maxrf.synth import make_scan

    say = log or (lambda _msg: None)
    from maxrf.outputs import probe_folder

    folder = probe_folder(folder, create=True)  # a read-only place: one line, before the work
    rpl = folder / "demo-scan.rpl"
    truth = make_scan(rpl, overwrite=True, **DEMO_SCAN)
    h, w, c = truth.shape
    say(f"scan: {rpl} ({h} x {w} pixels x {c} channels, synthetic; truth beside it)")
    ds = convert(rpl, folder / "demo-scan.datastack", overwrite=True, client=client)
    say(f"converted: {ds.path}")
    return run_pipeline(ds, report=folder / "report.html", log=say, client=client)
