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


def _check_array(array: Any, label: str, report: VerifyReport) -> None:
    """Decode every chunk of a zarr array (the crc32c codec checks each one)."""
    chunks = array.chunks
    grid = [int(np.ceil(s / c)) if s else 0 for s, c in zip(array.shape, chunks)]
    for coords in np.ndindex(*grid):
        region = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(coords, chunks, array.shape))
        key = f"{label}/c/" + "/".join(map(str, coords))
        report.chunks_checked += 1
        if not (Path(array.store.root) / array.path / "c" / Path(*map(str, coords))).is_file():
            report.problems.append(f"{key}: chunk file missing (would read as zeros)")
            continue
        try:
            array[region]
        except Exception as exc:  # checksum mismatch or undecodable bytes
            report.problems.append(f"{key}: corrupt chunk ({type(exc).__name__}: {exc})")


def verify(path: str | os.PathLike) -> VerifyReport:
    """Check every chunk of the cube and of every layer, and the layers' consistency.

    Parameters
    ----------
    path : path
        The ``.datastack`` folder.

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
    for name, shape in [("cube", (h, w, c)), ("max_spectrum", (c,)), ("sum_spectrum", (c,)),
                        ("argmax_pixels", (c, 2))]:
        try:
            arr = root[name]
        except KeyError:
            report.problems.append(f"{name}: missing")
            continue
        if tuple(arr.shape) != shape:
            report.problems.append(f"{name}: shape {tuple(arr.shape)}, expected {shape}")
        _check_array(arr, name, report)
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
            _check_array(arr, f"{entry['dir']}/{key}", report)
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
    return report
