"""Check a datastack end to end: every chunk's checksum, missing chunks, layer consistency.

Zarr reads a missing chunk as fill values and a damaged one as an error somewhere deep
in a computation; :func:`verify` finds both up front and names the chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from maxrf.store import DataStack, StoredArray, check_chunks, store_state, stored_array
from maxrf.types import ClientLike

if TYPE_CHECKING:
    from dask.delayed import Delayed


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``ok`` is True when ``problems`` is empty."""

    path: str
    chunks_checked: int = 0
    layers_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "chunks_checked": self.chunks_checked,
                "layers_checked": self.layers_checked, "problems": list(self.problems)}


CHUNKS_PER_TASK = 32
"""Chunks decoded per task (about 0.5 GB of cube): checks run in parallel, on a cluster too."""


def _chunk_tasks(array: StoredArray, report: VerifyReport) -> list[Delayed]:
    """Delayed checks of every chunk of a stored array, :data:`CHUNKS_PER_TASK` at a time."""
    import dask

    coords = array.chunk_coords()
    report.chunks_checked += len(coords)
    folder = str(array.folder)
    return [dask.delayed(check_chunks, pure=False)(folder, array.label, coords[i:i + CHUNKS_PER_TASK])
            for i in range(0, len(coords), CHUNKS_PER_TASK)]


def verify(path: str | os.PathLike[str], client: ClientLike = None) -> VerifyReport:
    """Check every chunk of the cube and of every layer, and the layers' consistency.

    Parameters
    ----------
    path : path
        The ``.datastack`` folder.
    client : dask.distributed.Client or str, optional
        Decode the chunks on this cluster (or scheduler address; default
        ``MAXRF_SCHEDULER``, else local threads). The workers must see the store's path.

    Returns
    -------
    VerifyReport
        Problems found, each naming the chunk or layer; empty when the store is sound.
    """
    ds = DataStack(path)
    report = VerifyReport(str(ds.path))
    h, w, c = ds.shape
    tasks = []
    optional = {"smoothed_max_spectrum"}  # convert --seed-max, or the first ds.max_spectrum()
    for name, shape in [("cube", (h, w, c)), ("max_spectrum", (c,)), ("sum_spectrum", (c,)),
                        ("argmax_pixels", (c, 2)), ("smoothed_max_spectrum", (c,))]:
        arr = stored_array(ds.path, name)
        if arr is None and name in optional:
            continue
        if arr is None:
            report.problems.append(f"{name}: missing")
            continue
        if arr.shape != shape:
            report.problems.append(f"{name}: shape {arr.shape}, expected {shape}")
        tasks += _chunk_tasks(arr, report)
    for name, entry in store_state(ds.path).layers.items():
        report.layers_checked += 1
        if not (ds.path / entry.dir).is_dir():
            report.problems.append(f"layer {name}: folder {entry.dir} missing")
            continue
        for key in entry.arrays:
            arr = stored_array(ds.path, f"{entry.dir}/{key}")
            if arr is None:
                report.problems.append(f"layer {name}: array {key} missing")
                continue
            tasks += _chunk_tasks(arr, report)
            # maps must match the image, per-channel arrays the channels
            if key.endswith("maps") and arr.ndim >= 2 and arr.shape[-2:] != (h, w):
                report.problems.append(f"layer {name}: {key} shape {arr.shape} does not match the "
                                       f"{h} x {w} image")
            if key == "energies" and arr.shape != (c,):
                report.problems.append(f"layer {name}: energies shape {arr.shape}, expected ({c},)")
            if name == "calibration" and key == "energies":
                attrs = entry.attrs
                expected = attrs.get("offset_keV", np.nan) + attrs.get("gain_keV", np.nan) * np.arange(c)
                if not np.allclose(arr.read(), expected, atol=1e-6):
                    report.problems.append("layer calibration: energies disagree with gain/offset")
    from maxrf import engine

    for problems in engine.compute(*tasks, client=client):
        report.problems += problems
    return report
