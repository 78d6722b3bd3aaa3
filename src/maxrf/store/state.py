"""A store described without opening it as a DataStack: manifest entries, arrays, chunks.

verify and info read a store through these (they never touch zarr or the manifest).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.store.format import MANIFEST, read_manifest


@dataclass(frozen=True)
class LayerEntry:
    """What the manifest records of one layer: its folder, array names, attributes and version."""

    name: str
    dir: str
    arrays: tuple[str, ...]
    attrs: dict[str, Any]
    version: int


@dataclass(frozen=True)
class StoreState:
    """One consistent reading of a store's manifest (see :func:`store_state`)."""

    created: str | None
    maxrf_version: str | None
    metadata: dict[str, Any]
    layers: dict[str, LayerEntry]


def store_state(path: str | os.PathLike) -> StoreState:
    """Read the manifest once: creation time, maxrf version, provenance and layer entries.

    Raises
    ------
    MissingFileError, NotADataStackError, DataStackVersionError
        As :class:`DataStack`.
    """
    manifest = read_manifest(Path(path))
    layers = {
        name: LayerEntry(name, str(e["dir"]), tuple(e.get("arrays", [])), dict(e.get("attrs", {})),
                         int(e.get("version", 0)))
        for name, e in manifest.get("layers", {}).items()
    }
    return StoreState(manifest.get("created"), manifest.get("maxrf_version"),
                      dict(manifest.get("metadata", {})), layers)


def is_datastack(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder holding a manifest (a complete store, valid or not)."""
    return (Path(path) / MANIFEST).is_file()


@dataclass(frozen=True)
class StoredArray:
    """One zarr array of a store, described without reading its data.

    ``label`` names it in messages (``cube``, ``layers/peak_maps.1a2b3c4d/maps``).
    """

    label: str
    folder: Path
    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def chunk_coords(self) -> list[tuple[int, ...]]:
        """Grid coordinates of every chunk, in C order."""
        grid = [-(-s // c) if s else 0 for s, c in zip(self.shape, self.chunks)]
        return list(np.ndindex(*grid))

    def read(self) -> np.ndarray:
        """The whole array (for small arrays: spectra, energies)."""
        import zarr

        return zarr.open_array(self.folder, mode="r")[...]


def stored_array(path: str | os.PathLike, rel: str) -> StoredArray | None:
    """The array at ``rel`` inside the store (``'cube'``, ``'<layer dir>/<key>'``), or None if absent."""
    import zarr

    folder = Path(path) / rel
    if not (folder / "zarr.json").is_file():
        return None
    array = zarr.open_array(folder, mode="r")
    return StoredArray(rel, folder, tuple(int(s) for s in array.shape),
                       tuple(int(c) for c in array.chunks))


def check_chunks(folder: str | os.PathLike, label: str, coords_list: list[tuple[int, ...]]) -> list[str]:
    """Decode the chunks ``coords_list`` of the zarr array at ``folder``; one message per bad chunk.

    A missing chunk file (zarr would read it as fill values) and a chunk that fails its
    checksum or does not decode are both reported, named by their file (``LABEL/c/i/j/k``,
    or ``LABEL/c.i.j.k`` for the cube, :data:`maxrf.store.cube.CUBE_KEY_SEPARATOR`).
    """
    import zarr

    array = zarr.open_array(folder, mode="r")
    problems = []
    for coords in coords_list:
        region = tuple(slice(i * c, min((i + 1) * c, s))
                       for i, c, s in zip(coords, array.chunks, array.shape))
        name = array.metadata.encode_chunk_key(tuple(coords))
        key = f"{label}/{name}"
        if not (Path(folder) / name).is_file():
            problems.append(f"{key}: chunk file missing (would read as zeros)")
            continue
        try:
            array[region]
        except Exception as exc:  # checksum mismatch or undecodable bytes
            problems.append(f"{key}: corrupt chunk ({type(exc).__name__}: {exc})")
    return problems


def layer_shapes(path: str | os.PathLike, entry: LayerEntry) -> dict[str, list[int]]:
    """Shape of every array of a layer, read from the zarr metadata only."""
    import zarr

    group = zarr.open_group(Path(path) / entry.dir, mode="r")
    return {k: list(group[k].shape) for k in entry.arrays}


