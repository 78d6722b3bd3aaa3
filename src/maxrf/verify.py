"""Check a datastack end to end: every chunk's checksum, missing chunks, layer consistency.

Zarr reads a missing chunk as fill values and a damaged one as an error somewhere deep
in a computation; :func:`verify` finds both up front and names the chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.store import DataStack, read_manifest


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


def _check_chunks(folder: str, label: str, coords_list: list[tuple[int, ...]]) -> list[str]:
    """Decode the chunks ``coords_list`` of the zarr array at ``folder`` (runs on a worker)."""
    import zarr

    array = zarr.open_array(folder, mode="r")
    problems = []
    for coords in coords_list:
        region = tuple(slice(i * c, min((i + 1) * c, s))
                       for i, c, s in zip(coords, array.chunks, array.shape))
        key = f"{label}/c/" + "/".join(map(str, coords))
        if not (Path(folder) / "c" / Path(*map(str, coords))).is_file():
            problems.append(f"{key}: chunk file missing (would read as zeros)")
            continue
        try:
            array[region]
        except Exception as exc:  # checksum mismatch or undecodable bytes
            problems.append(f"{key}: corrupt chunk ({type(exc).__name__}: {exc})")
    return problems


def _chunk_tasks(array: Any, label: str, report: VerifyReport) -> list:
    """Delayed checks of every chunk of a zarr array, :data:`CHUNKS_PER_TASK` at a time."""
    import dask

    grid = [int(np.ceil(s / c)) if s else 0 for s, c in zip(array.shape, array.chunks)]
    coords = list(np.ndindex(*grid))
    report.chunks_checked += len(coords)
    folder = str(Path(array.store.root) / array.path)
    return [dask.delayed(_check_chunks, pure=False)(folder, label, coords[i:i + CHUNKS_PER_TASK])
            for i in range(0, len(coords), CHUNKS_PER_TASK)]


def verify(path: str | os.PathLike, client: Any = None) -> VerifyReport:
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
    import zarr

    ds = DataStack(path)
    report = VerifyReport(str(ds.path))
    root = zarr.open_group(ds.path, mode="r")
    h, w, c = ds.shape
    tasks = []
    for name, shape in [("cube", (h, w, c)), ("max_spectrum", (c,)), ("sum_spectrum", (c,)),
                        ("argmax_pixels", (c, 2))]:
        try:
            arr = root[name]
        except KeyError:
            report.problems.append(f"{name}: missing")
            continue
        if tuple(arr.shape) != shape:
            report.problems.append(f"{name}: shape {tuple(arr.shape)}, expected {shape}")
        tasks += _chunk_tasks(arr, name, report)
    manifest = read_manifest(ds.path)
    for name, entry in manifest.get("layers", {}).items():
        report.layers_checked += 1
        folder = ds.path / entry["dir"]
        if not folder.is_dir():
            report.problems.append(f"layer {name}: folder {entry['dir']} missing")
            continue
        group = zarr.open_group(folder, mode="r")
        for key in entry.get("arrays", []):
            try:
                arr = group[key]
            except KeyError:
                report.problems.append(f"layer {name}: array {key} missing")
                continue
            tasks += _chunk_tasks(arr, f"{entry['dir']}/{key}", report)
            # maps must match the image, per-channel arrays the channels
            if key.endswith("maps") and arr.ndim >= 2 and tuple(arr.shape[-2:]) != (h, w):
                report.problems.append(f"layer {name}: {key} shape {arr.shape} does not match the "
                                       f"{h} x {w} image")
            if key == "energies" and arr.shape != (c,):
                report.problems.append(f"layer {name}: energies shape {arr.shape}, expected ({c},)")
        if name == "calibration":
            attrs = entry.get("attrs", {})
            if "energies" in entry.get("arrays", []):
                e = group["energies"][...]
                expected = attrs.get("offset_keV", np.nan) + attrs.get("gain_keV", np.nan) * np.arange(c)
                if not np.allclose(e, expected, atol=1e-6):
                    report.problems.append("layer calibration: energies disagree with gain/offset")
    from maxrf import engine

    for problems in engine.compute(*tasks, client=client):
        report.problems += problems
    return report
