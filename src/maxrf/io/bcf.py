"""Bruker ``.bcf`` hypermaps (Esprit, M4 Tornado), read block by block through rosettasciio.

Format (as documented by rosettasciio's ``rsciio.bruker`` reader, which maxrf uses
for everything but the streaming):

* The file is an AidAim SFS container (signature ``AAMVHFSS``): a small virtual file
  system whose files are stored in chunks, optionally zlib-compressed in blocks
  (``AACS`` header). ``EDSDatabase/HeaderData`` is an XML header (image size, stage,
  detector, the energy calibration ``CalibAbs`` / ``CalibLin``, elements);
  ``EDSDatabase/SpectrumData<i>`` is hypermap ``i``.
* A hypermap is a ``0x1A0``-byte header (height, width as ``<i4``) followed by
  ``height`` lines; a line is a ``<u4`` pixel count then, per pixel, a 22-byte header
  (``<IHHIHHHI``: x, channels, channels stored, a constant, packing flag, size,
  pulses, data size) and the pixel's packed data: flag 0 = 16-bit pulse list, flag 1 =
  12-bit packed pulse list, flag > 1 = "instructively packed" spectrum followed by
  extra pulses (``4 + 2 * pulses`` bytes when pulses > 0, else 4 bytes).

rosettasciio's own ``lazy=True`` decodes the whole hypermap in one task (the whole
cube in memory). maxrf instead, at open, walks the pixel headers once (no decoding)
and records where each line starts in the decompressed stream; a block of rows is then
decoded on its own by rosettasciio's compiled parser (``unbcf_fast.parse_to_numpy``, or
its pure-Python twin) fed with just those lines, so memory is bounded by the block.
The channel count comes from rosettasciio; counts are decoded as ``uint16`` (``uint32``
when rosettasciio's estimate asks for it), never the ``uint8`` rosettasciio picks from
twice the mean pixel, which an XRF hot spot overflows silently. The calibration is
the file's (``offset``, ``scale`` of the spectrum header, keV); the rest of the header
is kept as metadata. Only the default hypermap (lowest index)
is read; downsampling and energy cut-off are not offered (convert keeps every
channel).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.errors import MissingFileError, ScanFormatError
from maxrf.io.base import FileScan, block_slices, json_safe

__all__ = ["BcfScan"]

_DATA_START = 0x1A0
_PIXEL_HEADER = struct.Struct("<IHHIHHHI")


class _Stream:
    """Byte ranges of one SFS internal file, decompressing only the zlib blocks needed."""

    def __init__(self, item: Any, compressed: bool, blocks: np.ndarray, block_size: int):
        self.item = item
        self.compressed = compressed
        self.blocks = blocks  # (n, 2): file offset of block data, compressed size
        self.block_size = block_size

    @classmethod
    def of(cls, item: Any, compressed: bool) -> _Stream:
        if not compressed:
            return cls(item, False, np.zeros((0, 2), np.int64), 0)
        table, offset = [], 0x80  # the first compressed block header
        for _ in range(item.no_of_compr_blk):
            size = struct.unpack("<I12x", item.read_piece(offset, 16))[0]
            table.append((offset + 16, size))
            offset += 16 + size
        return cls(item, True, np.array(table, np.int64).reshape(-1, 2), int(item.uncompressed_blk_size))

    def read(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the (decompressed) file."""
        if not self.compressed:
            return self.item.read_piece(start, stop - start)
        k0, k1 = start // self.block_size, (stop - 1) // self.block_size
        parts = [zlib.decompress(self.item.read_piece(int(o), int(s))) for o, s in self.blocks[k0:k1 + 1]]
        data = b"".join(parts)
        base = k0 * self.block_size
        return data[start - base:stop - base]

    def chunks(self):
        """The whole file, piece by piece (a generator of bytes)."""
        if not self.compressed:
            yield from self.item._iter_read_chunks()
            return
        for o, s in self.blocks:
            yield zlib.decompress(self.item.read_piece(int(o), int(s)))


def _line_starts(chunks: Any, height: int, path: Path) -> np.ndarray:
    """Offsets (bytes, in the decompressed hypermap) where each line starts, plus the end."""
    buf, base, pos = b"", 0, _DATA_START
    it = iter(chunks)

    def need(n: int) -> None:
        nonlocal buf, base
        while pos + n > base + len(buf):
            try:
                more = next(it)
            except StopIteration:
                raise ScanFormatError("the hypermap data ends early (truncated .bcf file)", path) from None
            end = base + len(buf)
            if pos <= end:  # keep the unread tail, append the new piece
                buf, base = buf[pos - base:] + more, pos
            else:  # the last pixel's data ran past the buffer: the piece starts at ``end``
                buf, base = more, end

    starts = np.empty(height + 1, np.int64)
    unpack = _PIXEL_HEADER.unpack_from
    for line in range(height):
        starts[line] = pos
        need(4)
        (pixels,) = struct.unpack_from("<I", buf, pos - base)
        pos += 4
        for _ in range(pixels):
            need(22)
            _x, _c1, _c2, _d, flag, _s1, pulses, size = unpack(buf, pos - base)
            pos += 22 + size
            if flag > 1 and pulses > 0:
                pos += 2 * pulses
    starts[height] = pos
    return starts


class _OneBuffer:
    """A stand-in for rosettasciio's SFS item: serves one buffer as the whole hypermap."""

    def __init__(self, data: bytes):
        self.data = data

    def get_iter_and_properties(self) -> tuple[Any, int, int]:
        return iter([self.data]), len(self.data), 1


@dataclass
class BcfScan(FileScan):
    """A Bruker ``.bcf`` hypermap (see the module docstring); picklable."""

    path: Path
    index: int
    shape: tuple[int, int, int]
    dtype: np.dtype
    calibration: tuple[float, float] | None
    starts: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    format = "bcf"

    def __post_init__(self) -> None:
        self._stream: _Stream | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_stream"] = None
        return state

    @classmethod
    def open(cls, path: str | os.PathLike) -> BcfScan:
        """Read the header, find every line's start (no pixel is decoded).

        Raises
        ------
        MissingFileError
            No file at ``path``.
        ScanFormatError
            Not an SFS container, no hypermap, an unknown compression or truncated data.
        """
        p = Path(path)
        if not p.is_file():
            raise MissingFileError("does not exist", p)
        reader = _bcf_reader(p)
        header = reader.header
        index = int(reader.def_index)
        eds = header.spectra_data[index]
        h, w = int(header.image.height), int(header.image.width)
        c = int(eds.data.size)
        # rosettasciio sizes the dtype from twice the mean pixel (uint8 for these maps); an
        # XRF hot spot exceeds that, so never less than uint16: a pulse-list pixel holds at
        # most 65535 pulses (a uint16 header field), so it cannot overflow
        estimate = np.dtype(header.estimate_map_depth(index=index, downsample=1, for_numpy=False))
        dtype = np.dtype(np.uint32 if estimate.itemsize > 2 else np.uint16)
        stream = _stream_of(reader, index, p)
        starts = _line_starts(stream.chunks(), h, p)
        gain, offset = float(eds.scale), float(eds.offset)
        cal = (gain, offset) if np.isfinite(gain) and np.isfinite(offset) and gain > 0 else None
        scan = cls(p, index, (h, w, c), dtype, cal, starts, _metadata(reader, index))
        scan._stream = stream
        return scan

    def source_info(self) -> dict[str, Any]:
        """Provenance: format, file, size, hypermap index."""
        return {**super().source_info(), "hypermap": self.index}

    def read_block(self, rows: Any, cols: slice | None = None) -> np.ndarray:
        """Pixels ``[rows, cols]``, all channels: ``(r, c, channels)`` in :attr:`dtype`.

        Only the lines of the block are decompressed and decoded; a block narrower than
        the image is decoded one line at a time, so memory stays near the block size.
        """
        h, w, c = self.shape
        r, cc = block_slices(rows, cols, h, w)
        out = np.empty((len(r), len(cc), c), dtype=self.dtype)
        if out.size == 0:
            return out
        col_sel = slice(cc.start, cc.stop, cc.step)
        if r.step == 1 and len(cc) == w:
            out[...] = self._decode(r.start, r.stop)[:, col_sel]
        else:
            for i, row in enumerate(r):
                out[i] = self._decode(row, row + 1)[0, col_sel]
        return out

    def _decode(self, r0: int, r1: int) -> np.ndarray:
        if self._stream is None:
            self._stream = _stream_of(_bcf_reader(self.path), self.index, self.path)
        data = self._stream.read(int(self.starts[r0]), int(self.starts[r1]))
        head = struct.pack("<ii", r1 - r0, self.shape[1]).ljust(_DATA_START, b"\0")
        buffer = _OneBuffer(head + data + bytes(64))  # padding: the parser peeks ahead
        from rsciio.bruker import _api

        parse = _api.unbcf_fast.parse_to_numpy if _api.fast_unbcf else _api.py_parse_hypermap
        try:
            cube = parse(buffer, (r1 - r0, self.shape[1], self.shape[2]), self.dtype)
        except Exception as exc:  # the parsers raise plain errors on damaged data
            raise ScanFormatError(f"cannot decode hypermap lines {r0}:{r1}: {exc}", self.path) from None
        return np.asarray(cube, dtype=self.dtype).reshape(r1 - r0, self.shape[1], self.shape[2])


def _bcf_reader(path: Path) -> Any:
    from rsciio.bruker._api import BCF_reader

    try:
        return BCF_reader(str(path))
    except (TypeError, ValueError, KeyError, IndexError, OSError, struct.error) as exc:
        raise ScanFormatError(f"is not a readable Bruker .bcf hypermap ({exc})", path) from None


def _stream_of(reader: Any, index: int, path: Path) -> _Stream:
    if reader.compression not in ("None", "zlib"):
        raise ScanFormatError(f"uses an unknown compression {reader.compression!r}", path)
    try:
        item = reader.get_file(f"EDSDatabase/SpectrumData{index}")
    except KeyError:
        raise ScanFormatError(f"has no hypermap {index}", path) from None
    return _Stream.of(item, reader.compression == "zlib")


def _metadata(reader: Any, index: int) -> dict[str, Any]:
    header = reader.header
    eds = header.get_spectra_metadata(index=index)
    meta: dict[str, Any] = {
        "hypermap": index,
        "available_hypermaps": list(reader.available_indexes),
        "name": getattr(header, "name", None),
        "date": getattr(header, "date", None),
        "time": getattr(header, "time", None),
        "mode": getattr(header, "mode", None),
        "pixel_size": {"x": getattr(header, "x_res", None), "y": getattr(header, "y_res", None),
                       "units": getattr(header, "units", None)},
        "elements": sorted(getattr(header, "elements", {}) or {}),
        "energy": {"offset_keV": float(eds.offset), "scale_keV": float(eds.scale)},
        "hardware": getattr(eds, "hardware_metadata", {}),
        "detector": getattr(eds, "detector_metadata", {}),
        "analysis": getattr(eds, "esma_metadata", {}),
        "stage": getattr(header, "stage_metadata", {}),
    }
    try:
        meta["instrument"] = header.get_acq_instrument_dict(detector=True, index=index)
    except Exception:  # optional: some headers lack microscope fields
        meta["instrument"] = None
    return json_safe(meta)
