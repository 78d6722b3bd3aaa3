"""The DataStack: one scan's cube, summary spectra and derived layers on zarr v3.

This package is the only code that knows zarr and the manifest: convert, verify, info,
report and viewer go through the names here (:func:`create_cube`, :func:`finish_store`,
:func:`store_state`, :func:`stored_array`, :func:`check_chunks`, :class:`DataStack`).
One module per concern: ``format`` (manifest, codecs, atomic files, the writer lock),
``cube`` (creating, filling and reading the cube), ``layers`` (reading and writing derived
layers), ``state`` (a store described without opening it), ``datastack`` (:class:`DataStack`,
:func:`open_datastack`).

Layout of ``NAME.datastack/`` (a directory, not a zip: layers must be replaceable one
file at a time without rewriting the cube, which a single-file archive cannot do; to
share a finished store, zip the folder)::

    maxrf.json               manifest: format version, metadata, layers -> folders
    zarr.json                zarr v3 group
    cube/                    (H, W, C) chunks of pixels x all channels, blosc-lz4 + crc32c
    max_spectrum/ sum_spectrum/ argmax_pixels/
    smoothed_max_spectrum/   the seed's max spectrum: from convert --seed-max, or added
                             on the first ds.max_spectrum() call (add_summary_array)
    layers/NAME.TOKEN/       one zarr group per derived layer version

Crash safety: a store is valid only once ``maxrf.json`` names it so. Convert builds the
store in a hidden sibling folder and renames it into place when complete. A layer is
written to a new folder, then the manifest is replaced atomically (``os.replace``) to
point to it, then the previous folder is removed; a crash at any moment leaves the
previous manifest, pointing at complete data. Writers hold an exclusive lock; readers
need none.
"""
from __future__ import annotations

from maxrf.store.cube import (
    ChunkWriter,
    CubeSink,
    CubeSource,
    add_summary_array,
    create_cube,
    finish_store,
)
from maxrf.store.datastack import DataStack, open_datastack
from maxrf.store.format import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    FORMAT,
    FORMAT_VERSION,
    LAYERS,
    LOCK,
    MANIFEST,
    codecs_for,
    disk_errors,
    new_manifest,
    read_manifest,
    write_array,
    write_json_atomic,
    writer_lock,
)
from maxrf.store.layers import (
    Layer,
    LayerArray,
    LayerWriter,
    delete_layer,
    write_layer,
    write_region,
)
from maxrf.store.state import (
    LayerEntry,
    StoredArray,
    StoreState,
    check_chunks,
    is_datastack,
    layer_shapes,
    store_state,
    stored_array,
)

__all__ = [
    "COMPRESSIONS", "DEFAULT_COMPRESSION", "FORMAT", "FORMAT_VERSION", "LAYERS", "LOCK",
    "MANIFEST", "ChunkWriter", "CubeSink", "CubeSource", "DataStack", "Layer", "LayerArray",
    "LayerEntry", "LayerWriter", "StoreState", "StoredArray", "add_summary_array", "check_chunks",
    "codecs_for",
    "create_cube", "delete_layer", "disk_errors", "finish_store", "is_datastack",
    "layer_shapes", "new_manifest", "open_datastack", "read_manifest", "store_state",
    "stored_array", "write_array", "write_json_atomic", "write_layer", "write_region",
    "writer_lock",
]
