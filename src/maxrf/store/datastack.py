"""The DataStack: one scan's cube, summary spectra, calibration and derived layers."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.compat import SeedArray, seed_array
from maxrf.errors import CorruptDataError, LayerMissingError, NotADataStackError
from maxrf.store.cube import CubeSource, _CubeReader
from maxrf.store.format import read_manifest
from maxrf.store.layers import Layer, _open_layer_lazy, _read_layer, write_layer


class DataStack:
    """A converted scan: lazy cube, summary spectra, calibration and derived layers.

    Parameters
    ----------
    path : str or Path
        The ``.datastack`` folder.

    Raises
    ------
    MissingFileError
        If ``path`` does not exist.
    NotADataStackError
        If ``path`` is not a complete maxrf datastack.
    DataStackVersionError
        If it was written in a format version this maxrf cannot read.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = read_manifest(self.path)
        self._manifest = manifest
        import zarr

        try:
            self._root = zarr.open_group(self.path, mode="r")
            cube = self._root["cube"]
        except Exception as exc:
            raise NotADataStackError(f"cannot open the zarr cube ({exc})", self.path) from exc
        self._cube_array = cube
        self.shape: tuple[int, int, int] = tuple(int(s) for s in cube.shape)
        self.dtype = np.dtype(cube.dtype)
        self.chunks: tuple[int, int, int] = tuple(int(c) for c in cube.chunks)

    # ------------------------------------------------------------------ core data
    @property
    def cube(self):
        """The cube as a lazy dask array ``(H, W, C)`` chunked as blocks of pixels x all channels."""
        import dask.array as da

        return da.from_array(
            _CubeReader(self._cube_array, self.path), chunks=self.chunks, asarray=False,
            name=f"maxrf-cube-{self.path.resolve()}-{self._manifest.get('created', '')}",
        )

    maxrf_cube = cube  # maxrf4u's name (see maxrf.compat)

    def block_source(self) -> CubeSource:
        """The stored cube as a source for :func:`maxrf.engine.run`."""
        return CubeSource(self.path, self.shape, self.chunks)

    def _core(self, name: str) -> np.ndarray:
        try:
            return self._root[name][...]
        except Exception as exc:
            raise CorruptDataError(f"cannot read {name} ({exc})", self.path) from exc

    @property
    def max_spectrum(self) -> SeedArray:
        """Per channel, the maximum over all pixels (counts).

        Called as the seed does, ``ds.max_spectrum()`` returns maxrf4u's max spectrum,
        whose peaks are the scan's peaks (:meth:`seed_max_spectrum`): the stored
        :attr:`smoothed_max_spectrum`, else computed on this first call and stored. The
        attribute itself only reads the stored raw maximum.
        """
        out = seed_array(self._core("max_spectrum"))
        smoothed = self.smoothed_max_spectrum
        if smoothed is not None:
            out.seed_call = smoothed
        elif not self.convert_sigma:
            out.seed_call = self.seed_max_spectrum
        return out

    def seed_max_spectrum(self, progress: bool = False, client: Any = None) -> np.ndarray:
        """maxrf4u's max spectrum (:func:`maxrf.seed_spectrum.seed_max_spectrum`): the stored
        :attr:`smoothed_max_spectrum`, or computed in one pass over the cube and stored
        (returned unstored when the store is read-only); a store converted with smoothing
        answers its max spectrum, already smoothed.

        Parameters
        ----------
        progress : bool
            Show the pass's progress.
        client : dask.distributed.Client or str, optional
            Run the pass on this cluster.
        """
        from maxrf.seed_spectrum import seed_max_spectrum

        return seed_max_spectrum(self, progress=progress, client=client)

    @property
    def convert_sigma(self) -> float:
        """The Gaussian convert smoothed the cube with along the channels (channels; 0 =
        none, also for a store that does not record it)."""
        options = self.metadata.get("options") or {}
        return float(options.get("sigma") or 0.0)

    @property
    def smoothed_max_spectrum(self) -> np.ndarray | None:
        """Per channel, the maximum over pixels of the spectra smoothed by a Gaussian of
        :data:`maxrf.seed_spectrum.SEED_SIGMA` channels (counts), or None when the store
        does not hold it (yet: convert computes it only with ``seed_max=True``, the first
        ``ds.max_spectrum()`` call otherwise; never for a store converted with smoothing,
        whose max spectrum is already smoothed). Reading it never computes it."""
        try:
            present = "smoothed_max_spectrum" in self._root
        except Exception:  # noqa: BLE001 - an unreadable group: the core read will say so
            return None
        return self._core("smoothed_max_spectrum") if present else None

    @property
    def sum_spectrum(self) -> SeedArray:
        """Per channel, the mean over all pixels (counts per pixel)."""
        return seed_array(self._core("sum_spectrum"))

    @property
    def argmax_pixels(self) -> np.ndarray:
        """``(C, 2)`` [row, col] of the pixel holding each channel's maximum."""
        return self._core("argmax_pixels")

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance: source files and sizes, header, options, package version, creation time."""
        return dict(self._manifest.get("metadata", {}))

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The energy calibration (``gain_keV``, ``offset_keV``, ``peaks``, ``method``) or None."""
        if "calibration" not in self.layers:
            return None
        return self.read("calibration").attrs

    @property
    def energies(self) -> SeedArray:
        """Energy (keV) of each channel: ``offset_keV + gain_keV * channel``.

        Raises
        ------
        LayerMissingError
            If the scan has no energy calibration yet (run ``maxrf calibrate``).
        """
        cal = self.calibration
        if cal is None:
            raise LayerMissingError(
                "no energy calibration: run 'maxrf calibrate' (or maxrf.calibrate)", self.path
            )
        n = self.shape[2]
        return seed_array(cal["offset_keV"] + cal["gain_keV"] * np.arange(n, dtype=np.float64))

    # ---------------------------------------------------------------- layers
    @property
    def layers(self) -> list[str]:
        """Names of the derived layers present (re-read from disk)."""
        return sorted(read_manifest(self.path).get("layers", {}))

    def read(self, name: str, lazy: bool = False) -> Layer:
        """Read a derived layer (the cube is never read).

        Parameters
        ----------
        name : str
            Layer name (``'peak_maps'``, ``'element_maps'``...).
        lazy : bool
            Return :class:`LayerArray` views that read on indexing (``layer['maps'][3]``
            reads one map) instead of loading every array: for map stacks of scans
            larger than memory.

        Raises
        ------
        LayerMissingError
            If the layer has not been computed.
        """
        if lazy:
            return _open_layer_lazy(self.path, name)
        for _attempt in range(5):
            manifest = read_manifest(self.path)
            entry = manifest.get("layers", {}).get(name)
            if entry is None:
                raise LayerMissingError(
                    f"layer {name!r} has not been computed (present: {sorted(manifest.get('layers', {}))})",
                    self.path,
                )
            try:
                layer = _read_layer(self.path / entry["dir"], name, entry)
                error = None
            except Exception as exc:
                layer, error = None, exc
            # zarr reads a vanished chunk as fill values, so a folder deleted under us
            # could pass silently; writers delete a folder only after the manifest stops
            # naming it, so if it still names it now, what we read (or failed to) is real.
            now = read_manifest(self.path).get("layers", {}).get(name)
            if now is None or now["dir"] != entry["dir"]:
                continue  # replaced meanwhile: read the new version
            if error is not None:
                raise CorruptDataError(
                    f"layer {name!r} is damaged ({type(error).__name__}: {error}); recompute it",
                    self.path / entry["dir"],
                ) from error
            return layer
        raise CorruptDataError(f"layer {name!r} keeps disappearing while read", self.path)

    def write_layer(
        self,
        name: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Write (or replace) a derived layer atomically.

        Readers see the previous layer or the new one, never a mix; a crash leaves the
        previous state; the previous version's folder is removed, so recomputing a layer
        does not grow the store.

        Raises
        ------
        ConcurrentWriteError
            If another process is writing to this datastack.
        DiskFullError
            If the disk fills up (the layer is left as it was).
        """
        write_layer(self.path, name, arrays, attrs)

    def __repr__(self) -> str:
        h, w, c = self.shape
        return f"<DataStack {self.path.name!r} {h}x{w} px x {c} channels {self.dtype}, layers={self.layers}>"


def open_datastack(source: str | os.PathLike[str] | DataStack) -> DataStack:
    """Return ``source`` if it is a DataStack, else open the datastack at that path."""
    return source if isinstance(source, DataStack) else DataStack(source)


