"""Where the maps of a pass go: memory, or the store's layers streamed band by band.

Both sinks take the same calls from :func:`maxrf.maps.compute.run_plans`, so the in-memory
and the stored computation are one path: in memory the whole image is one band and its
arrays are kept as they are (views of the engine's output, no copy); stored, each row band
is written to the new layers as the pass completes it (never ``k x H x W`` in memory) and
all layers are committed together at the end, then read back lazily.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from maxrf import engine

__all__ = ["LayerSink", "MemorySink"]


class MemorySink:
    """Maps kept in memory (the pass's outputs, one band of all rows)."""

    banded = False

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.arrays: dict[str, dict[str, np.ndarray]] = {}

    def band_rows(self, n_maps: int) -> int:
        return self.shape[0]

    def create(self, layer: str, name: str, n_maps: int | None, rows: int) -> None:
        self.arrays.setdefault(layer, {})

    def write(self, layer: str, name: str, rows: slice, value: np.ndarray, first: int = 0) -> None:
        self.arrays[layer][name] = value

    def bands(self, layer: str, name: str) -> Iterator[tuple[slice, np.ndarray]]:
        yield slice(0, self.shape[0]), self.arrays[layer][name]

    def put(self, layer: str, name: str, value: np.ndarray) -> None:
        """Small arrays are written with the layer only (see write_peak_maps)."""

    def finish(self, attrs: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        return self.arrays


class LayerSink:
    """Maps streamed into new layers of a DataStack through a ``LayerWriter``."""

    banded = True

    def __init__(self, datastack: Any, writer: Any):
        self.ds = datastack
        self.lw = writer
        self.shape = tuple(int(v) for v in datastack.shape[:2])
        self.targets: dict[tuple[str, str], Any] = {}
        self.rows: dict[tuple[str, str], int] = {}
        self.ndim: dict[tuple[str, str], int] = {}

    def band_rows(self, n_maps: int) -> int:
        return engine.band_rows(self.shape, n_maps, self.ds.chunks[0])

    def create(self, layer: str, name: str, n_maps: int | None, rows: int) -> None:
        h, w = self.shape
        if n_maps is None:
            target = self.lw.create(layer, name, (h, w), np.float32, (rows, w))
        else:
            target = self.lw.create(layer, name, (n_maps, h, w), np.float32, (1, rows, w))
        self.targets[layer, name] = target
        self.rows[layer, name] = rows
        self.ndim[layer, name] = 2 if n_maps is None else 3

    def _index(self, layer: str, name: str, rows: slice, maps: slice = slice(None)
               ) -> tuple[slice, ...]:
        return (rows,) if self.ndim[layer, name] == 2 else (maps, rows)

    def write(self, layer: str, name: str, rows: slice, value: np.ndarray, first: int = 0) -> None:
        """Write rows of the array; of a map stack, maps ``first .. first + len(value)``."""
        maps = slice(first, first + value.shape[0]) if value.ndim == 3 else slice(None)
        self.lw.write(self.targets[layer, name], self._index(layer, name, rows, maps), value)

    def bands(self, layer: str, name: str) -> Iterator[tuple[slice, np.ndarray]]:
        """Read the stored array back band by band (a pass over the maps, not the cube)."""
        h, step = self.shape[0], self.rows[layer, name]
        target = self.targets[layer, name]
        for r0 in range(0, h, step):
            rows = slice(r0, min(r0 + step, h))
            yield rows, target[self._index(layer, name, rows)]

    def put(self, layer: str, name: str, value: np.ndarray) -> None:
        self.lw.put(layer, name, value)

    def finish(self, attrs: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        self.lw.commit(dict(attrs))
        return {layer: self.ds.read(layer, lazy=True) for layer in attrs}
