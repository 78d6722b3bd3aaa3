"""Bruker .bcf hypermaps: the two real files of ../shared/data/bcf (rosettasciio's test
files), read block by block and checked against rosettasciio's own whole-map reader."""

from __future__ import annotations

import pickle
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from rsciio.bruker import file_reader

from maxrf.convert import convert
from maxrf.errors import ScanFormatError
from maxrf.io import bcf as bcf_module
from maxrf.io import detect_format, open_scan
from maxrf.io.ripple import write_ripple

ROOT = Path(__file__).resolve().parents[2]
BCF = ROOT.parent / "shared" / "data" / "bcf"  # shared/ lies beside the clone; missing files fail
FILES = ["16x16_12bit_packed_8bit.bcf", "P45_the_default_job.bcf"]


def rsciio_map(path):
    """The hypermap and its energy axis as rosettasciio reads them (whole map at once)."""
    (item,) = [d for d in file_reader(str(path)) if d["data"].ndim == 3]
    energy = item["axes"][2]
    return np.asarray(item["data"]), (energy["scale"], energy["offset"])


@pytest.mark.parametrize("name", FILES)
def test_bcf_blocks_match_rosettasciio(name):
    path = BCF / name
    assert path.is_file(), f"missing test file {path}"
    expected, (scale, offset) = rsciio_map(path)
    scan = pickle.loads(pickle.dumps(open_scan(path)))
    assert detect_format(path) == "bcf"
    assert scan.shape == expected.shape and scan.dtype == np.uint16
    assert scan.calibration == pytest.approx((scale, offset), rel=1e-12)
    assert expected.sum() > 1000  # real counts, not an empty map
    np.testing.assert_array_equal(scan.read_block(slice(None), slice(None)), expected)
    h, w = expected.shape[:2]
    np.testing.assert_array_equal(scan.read_block(slice(3, h - 2), slice(1, w - 4)),
                                  expected[3:h - 2, 1:w - 4])
    np.testing.assert_array_equal(scan.read_block(slice(0, h, 3), slice(None)), expected[::3])


@pytest.mark.parametrize("name", FILES)
def test_bcf_converts_like_ripple(tmp_path, name):
    path = BCF / name
    expected, calibration = rsciio_map(path)
    rpl = write_ripple(tmp_path / "same.rpl", expected.astype(np.uint16), calibration=calibration)
    a = convert(path, tmp_path / "bcf.datastack", calibrate=False)
    b = convert(rpl, tmp_path / "ripple.datastack", calibrate=False)
    np.testing.assert_array_equal(a.cube.compute(), b.cube.compute())
    np.testing.assert_array_equal(a.max_spectrum, b.max_spectrum)
    np.testing.assert_allclose(a.sum_spectrum, b.sum_spectrum, rtol=1e-12)
    np.testing.assert_allclose(a.energies, b.energies, atol=1e-9)
    assert a.metadata["options"] == b.metadata["options"]
    meta = a.metadata["header"]
    assert meta["energy"]["scale_keV"] == pytest.approx(calibration[0])
    assert a.metadata["source"]["format"] == "bcf" and a.metadata["source"]["hypermap"] == 0


def test_bcf_blocks_decode_only_their_lines(monkeypatch):
    # streaming: each block asks the container for exactly its own lines' bytes
    scan = open_scan(BCF / "P45_the_default_job.bcf")
    requested = []
    original = bcf_module._Stream.read

    def spy(self, start, stop):
        requested.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(bcf_module._Stream, "read", spy)
    h = scan.shape[0]
    for r0 in range(0, h, 10):
        scan.read_block(slice(r0, min(h, r0 + 10)), slice(None))
    starts = scan.starts
    assert requested == [(int(starts[r]), int(starts[min(h, r + 10)])) for r in range(0, h, 10)]
    total = sum(b - a for a, b in requested)
    assert total == starts[-1] - starts[0]  # every byte once, none twice


class _FakeCompressed:
    """An SFS item holding zlib blocks in the AACS layout (header 0x80, 16-byte block heads)."""

    def __init__(self, payload: bytes, block: int):
        pieces = [payload[i:i + block] for i in range(0, len(payload), block)]
        body = b"".join(
            len(z).to_bytes(4, "little") + bytes(12) + z for z in (zlib.compress(p) for p in pieces)
        )
        self.raw = bytes(0x80) + body
        self.no_of_compr_blk = len(pieces)
        self.uncompressed_blk_size = block

    def read_piece(self, offset, length):
        return self.raw[offset:offset + length]


def test_zlib_blocks_read_like_rosettasciio():
    from rsciio.bruker._api import SFSTreeItem

    payload = np.random.default_rng(0).integers(0, 7, 50_000, dtype=np.uint8).tobytes()
    item = _FakeCompressed(payload, 4096)
    whole = b"".join(SFSTreeItem._iter_read_compr_chunks(item))  # rosettasciio's decoder
    assert whole == payload
    stream = bcf_module._Stream.of(item, compressed=True)
    for start, stop in [(0, 10), (4000, 4200), (8191, 8193), (12_345, 49_999), (0, 50_000)]:
        assert stream.read(start, stop) == whole[start:stop]


@pytest.mark.parametrize("damage", ["not_sfs", "truncated"])
def test_damaged_bcf_is_refused_by_name(tmp_path, damage):
    path = tmp_path / "bad.bcf"
    if damage == "not_sfs":
        path.write_bytes(b"this is not a bruker file" * 100)
    else:
        data = (BCF / "P45_the_default_job.bcf").read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "bad.datastack"
    with pytest.raises(ScanFormatError) as err:
        convert(path, out, calibrate=False)
    assert "bad.bcf" in str(err.value)
    assert not out.exists()


def test_bcf_copy_keeps_working_elsewhere(tmp_path):
    # the reader holds paths, not handles: a scan pickled to another process reopens the file
    path = shutil.copy(BCF / "16x16_12bit_packed_8bit.bcf", tmp_path / "copy.bcf")
    scan = pickle.loads(pickle.dumps(open_scan(path)))
    assert scan._stream is None
    assert scan.read_block(slice(0, 2), slice(0, 2)).shape == (2, 2, 2048)
