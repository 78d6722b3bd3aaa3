"""Tests of the ripple (.rpl/.raw) reader and writers.

The files read here are built with numpy directly (``tofile``, a transpose for image
order) and hand-written header text, never by :func:`maxrf.io.ripple.write_ripple`, so a
bug shared by the writer and the reader cannot hide itself.
"""

from __future__ import annotations

import os
import pickle
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from maxrf.errors import (
    MaxrfError,
    MissingFileError,
    OutputExistsError,
    OutputLocationError,
    ParameterError,
    RawSizeError,
    ScanFormatError,
)
from maxrf.io.ripple import (
    RippleHeader,
    RippleScan,
    RippleWriter,
    open_scan,
    read_rpl,
    write_ripple,
)

DTYPES = [
    ("unsigned", 1),
    ("unsigned", 2),
    ("unsigned", 4),
    ("unsigned", 8),
    ("signed", 1),
    ("signed", 2),
    ("signed", 4),
    ("signed", 8),
    ("float", 4),
    ("float", 8),
]
BYTE_ORDERS = ["little-endian", "big-endian", "dont-care"]
RECORD_BYS = ["vector", "image", "dont-care"]
KIND = {"unsigned": "u", "signed": "i", "float": "f"}


# --------------------------------------------------------------------------- helpers


def np_dtype(data_type: str, data_length: int, byte_order: str = "little-endian") -> np.dtype:
    """The numpy dtype of the stored values (dont-care is written little-endian)."""
    order = ">" if byte_order == "big-endian" else "<"
    return np.dtype(f"{order}{KIND[data_type]}{data_length}")


def random_cube(shape, data_type: str, data_length: int, seed: int = 0) -> np.ndarray:
    """Values spanning the whole range of the type (and a few special floats)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(f"={KIND[data_type]}{data_length}")
    if data_type == "float":
        cube = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype(dt)
        flat = cube.reshape(-1)
        flat[:4] = [np.inf, -np.inf, 0.0, -0.0][: flat.size]
        return cube
    info = np.iinfo(dt)
    cube = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    flat = cube.reshape(-1)
    flat[:2] = [info.min, info.max][: flat.size]
    return cube


def header_text(
    h: int,
    w: int,
    d: int,
    data_type: str,
    data_length: int,
    *,
    byte_order: str | None = "little-endian",
    record_by: str | None = "vector",
    offset: int | None = 0,
    extra: str = "",
    sep: str = "\t",
) -> str:
    lines = [f"width{sep}{w}", f"height{sep}{h}", f"depth{sep}{d}"]
    if offset is not None:
        lines.append(f"offset{sep}{offset}")
    lines += [f"data-length{sep}{data_length}", f"data-type{sep}{data_type}"]
    if byte_order is not None:
        lines.append(f"byte-order{sep}{byte_order}")
    if record_by is not None:
        lines.append(f"record-by{sep}{record_by}")
    return "\n".join(lines) + "\n" + extra


def numpy_pair(
    folder: Path,
    cube: np.ndarray,
    data_type: str,
    data_length: int,
    *,
    byte_order: str = "little-endian",
    record_by: str = "vector",
    offset: int = 0,
    name: str = "scan",
    header: str | None = None,
    raw_ext: str = ".raw",
    rpl_ext: str = ".rpl",
) -> Path:
    """Write a pair with numpy (raw) and by hand (header); return the .rpl path."""
    h, w, d = cube.shape
    stored = cube.astype(np_dtype(data_type, data_length, byte_order))
    if record_by == "image":
        stored = stored.transpose(2, 0, 1)
    raw_path = folder / f"{name}{raw_ext}"
    with open(raw_path, "wb") as f:
        f.write(b"\xab" * offset)
        np.ascontiguousarray(stored).tofile(f)
    if header is None:
        header = header_text(
            h,
            w,
            d,
            data_type,
            data_length,
            byte_order=byte_order,
            record_by=record_by,
            offset=offset,
        )
    rpl_path = folder / f"{name}{rpl_ext}"
    rpl_path.write_text(header, newline="")
    return rpl_path


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality (NaN payloads, signed zeros included)."""
    if a.shape != b.shape or a.dtype.itemsize != b.dtype.itemsize:
        return False
    u = f"=u{a.dtype.itemsize}"
    return np.array_equal(
        np.ascontiguousarray(a).view(u), np.ascontiguousarray(b.astype(a.dtype)).view(u)
    )


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a folder with its mtime and content."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- every dtype


@pytest.mark.parametrize("record_by", RECORD_BYS)
@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
@pytest.mark.parametrize("data_type,data_length", DTYPES)
def test_every_combination_reads_back(tmp_path, data_type, data_length, byte_order, record_by):
    shape = (3, 4, 5)
    cube = random_cube(shape, data_type, data_length, seed=data_length)
    offset = (data_length * 7 + len(byte_order) + len(record_by)) % 11
    rpl = numpy_pair(
        tmp_path,
        cube,
        data_type,
        data_length,
        byte_order=byte_order,
        record_by=record_by,
        offset=offset,
    )
    before = snapshot(tmp_path)
    scan = open_scan(rpl)
    assert scan.shape == shape
    assert scan.dtype == cube.dtype
    assert scan.dtype.isnative or scan.dtype.itemsize == 1
    assert scan.nbytes == cube.nbytes
    assert scan.header.offset == offset
    got = scan.read_all()
    assert got.flags.c_contiguous and got.dtype == cube.dtype
    assert same_bits(got, cube)
    # read_block on a sub-block equals numpy slicing
    assert same_bits(scan.read_block(slice(1, 3), slice(0, 3)), cube[1:3, 0:3])
    assert snapshot(tmp_path) == before  # nothing written, raw untouched


def test_header_properties(tmp_path):
    cube = random_cube((2, 3, 4), "signed", 4)
    rpl = numpy_pair(tmp_path, cube, "signed", 4, byte_order="big-endian", record_by="image")
    hdr = read_rpl(rpl)
    assert isinstance(hdr, RippleHeader)
    assert (hdr.width, hdr.height, hdr.depth, hdr.offset) == (3, 2, 4, 0)
    assert (hdr.data_length, hdr.data_type, hdr.byte_order, hdr.record_by) == (
        4,
        "signed",
        "big-endian",
        "image",
    )
    assert hdr.dtype == np.dtype(">i4")
    assert hdr.shape == (2, 3, 4)
    assert hdr.nbytes == 2 * 3 * 4 * 4 and isinstance(hdr.nbytes, int)
    assert hdr.raw["record-by"] == "image"
    assert hdr.calibration is None


def test_dont_care_is_little_endian_and_uint8_has_no_order(tmp_path):
    cube = random_cube((2, 2, 3), "unsigned", 2)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, byte_order="dont-care")
    assert read_rpl(rpl).dtype == np.dtype("<u2")
    cube8 = random_cube((2, 2, 3), "unsigned", 1)
    rpl8 = numpy_pair(tmp_path, cube8, "unsigned", 1, byte_order="dont-care", name="u8")
    assert read_rpl(rpl8).dtype == np.dtype("u1")
    assert np.array_equal(open_scan(rpl8).read_all(), cube8)


# --------------------------------------------------------------------------- header variants

BASE = {"width": "4", "height": "3", "depth": "6", "offset": "0", "data-length": "2"}


def _lines(sep="\t", **over) -> list[str]:
    keys = {
        **BASE,
        "data-type": "unsigned",
        "byte-order": "little-endian",
        "record-by": "vector",
        **over,
    }
    return [f"{k}{sep}{v}" for k, v in keys.items()]


HEADER_VARIANTS = {
    "plain-tabs": ("\n".join(_lines()) + "\n", None),
    "spaces": ("\n".join(_lines(" ")) + "\n", None),
    "many-spaces-and-tabs": ("\n".join(_lines(" \t  ")) + "\n", None),
    "crlf": ("\r\n".join(_lines()) + "\r\n", None),
    "no-final-newline": ("\n".join(_lines()), None),
    "mixed-case-keys": (
        "Width\t4\nHEIGHT\t3\nDepth\t6\nOffset\t0\ndata-Length\t2\nData-Type\tUnsigned\n"
        "BYTE-ORDER\tLittle-Endian\nRecord-By\tVector\n",
        None,
    ),
    "first-key-value-line": ("key\tvalue\n" + "\n".join(_lines()) + "\n", None),
    "first-key-value-line-spaces": ("KEY   VALUE\n" + "\n".join(_lines(" ")) + "\n", None),
    "comments-and-blank-lines": (
        ";Lispix header\n\n# hash comment\nkey\tvalue\n"
        + "\n\n".join(_lines())
        + "\nwidth\t4 ; inline comment\n",
        None,
    ),
    "defaults-only-required-keys": (
        "width 4\nheight 3\ndepth 6\ndata-length 2\ndata-type unsigned\n",
        None,
    ),
    "utf8-bom": ("\ufeff" + "\n".join(_lines()) + "\n", None),
    "unknown-keys-kept": ("\n".join(_lines()) + "\ntitle\tA painting\ndate\t\n", None),
    "bruker-m6": (
        "key\tvalue\n" + "\n".join(_lines()) + "\ndepthscaleorigin -0.956\n"
        "depthscaleincrement 0.010002\n",
        (0.010002, -0.956),
    ),
    "bruker-mixed-case": (
        "\n".join(_lines()) + "\nDepthScaleOrigin\t-0.956\nDepthScaleIncrement\t0.010002\n",
        (0.010002, -0.956),
    ),
    "bruker-decimal-comma": (
        "\n".join(_lines()) + "\ndepthscaleorigin\t-0,956\ndepthscaleincrement\t0,010002\n",
        (0.010002, -0.956),
    ),
    "rosettasciio-ev": (
        "\n".join(_lines())
        + "\ndepth-origin\t-956.0\ndepth-scale\t10.002\ndepth-units\teV\nev-per-chan\t10\n",
        (0.010002, -0.956),
    ),
    "rosettasciio-kev": (
        # what rosettasciio really writes for a keV axis: ev-per-chan rounds to 0
        ";File created by RosettaSciIO version 0.15.0\nkey\tvalue\n"
        + "\n".join(_lines(**{"byte-order": "dont-care"}))
        + "\ndepth-origin\t-0.956\ndepth-scale\t0.010002\ndepth-units\tkeV\nev-per-chan\t0\n",
        (0.010002, -0.956),
    ),
    "rosettasciio-undefined-units": (
        "\n".join(_lines()) + "\ndepth-origin\t0\ndepth-scale\t1\ndepth-units\t<undefined>\n",
        None,
    ),
    "lispix-ev-per-chan": ("\n".join(_lines()) + "\nev-per-chan\t20\n", (0.02, 0.0)),
    "ev-per-chan-zero": ("\n".join(_lines()) + "\nev-per-chan\t0\n", None),
    "duplicate-same-value": ("\n".join(_lines()) + "\ndata-Length\t2\n", None),
}


@pytest.mark.parametrize("name", sorted(HEADER_VARIANTS))
def test_header_variants(tmp_path, name):
    text, calibration = HEADER_VARIANTS[name]
    cube = random_cube((3, 4, 6), "unsigned", 2, seed=5)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, header=text)
    scan = open_scan(rpl)
    assert scan.shape == (3, 4, 6)
    assert np.array_equal(scan.read_all(), cube)
    if calibration is None:
        assert scan.calibration is None
    else:
        assert scan.calibration == pytest.approx(calibration, rel=1e-12, abs=1e-15)
        gain, off = scan.calibration
        assert off + gain * 100 == pytest.approx(calibration[1] + calibration[0] * 100)
    assert "key" not in scan.header.raw
    assert all(k == k.lower() for k in scan.header.raw)


def test_unknown_keys_are_in_raw(tmp_path):
    text, _ = HEADER_VARIANTS["unknown-keys-kept"]
    rpl = numpy_pair(tmp_path, random_cube((3, 4, 6), "unsigned", 2), "unsigned", 2, header=text)
    raw = read_rpl(rpl).raw
    assert raw["title"] == "A painting" and raw["date"] == ""


@pytest.mark.parametrize("offset", [0, 1, 13, 4096])
def test_offset_bytes_are_skipped(tmp_path, offset):
    cube = random_cube((5, 3, 7), "unsigned", 2, seed=offset)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, offset=offset)
    assert (tmp_path / "scan.raw").stat().st_size == cube.nbytes + offset
    assert np.array_equal(open_scan(rpl).read_all(), cube)


# --------------------------------------------------------------------------- partner files


@pytest.mark.parametrize(
    "rpl_ext,raw_ext", [(".rpl", ".raw"), (".RPL", ".RAW"), (".rpl", ".RAW"), (".Rpl", ".rAw")]
)
def test_partner_found_in_any_case(tmp_path, rpl_ext, raw_ext):
    cube = random_cube((2, 3, 4), "unsigned", 1)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 1, rpl_ext=rpl_ext, raw_ext=raw_ext)
    raw = tmp_path / f"scan{raw_ext}"
    for given in (rpl, raw, tmp_path / "scan", str(rpl)):
        scan = open_scan(given)
        assert scan.rpl_path.name == rpl.name and scan.raw_path.name == raw.name
        assert np.array_equal(scan.read_all(), cube)


def test_stem_with_dots(tmp_path):
    cube = random_cube((2, 3, 4), "unsigned", 2)
    numpy_pair(tmp_path, cube, "unsigned", 2, name="painting.v2")
    assert np.array_equal(open_scan(tmp_path / "painting.v2").read_all(), cube)
    assert np.array_equal(open_scan(tmp_path / "painting.v2.raw").read_all(), cube)


# --------------------------------------------------------------------------- read_block


@pytest.mark.parametrize("record_by", ["vector", "image"])
def test_read_block_equals_numpy_slicing(tmp_path, record_by):
    cube = random_cube((7, 9, 5), "signed", 2, seed=3)
    rpl = numpy_pair(tmp_path, cube, "signed", 2, byte_order="big-endian", record_by=record_by)
    scan = open_scan(rpl)
    slices = [
        (slice(None), slice(None)),
        (slice(0, 1), slice(0, 1)),
        (slice(2, 5), slice(3, 9)),
        (slice(6, 7), slice(0, 9)),
        (slice(-3, None), slice(None, -2)),
        (slice(1, 7, 2), slice(0, 9, 3)),
        (slice(None, None, -1), slice(5, 1, -2)),
        (slice(3, 3), slice(0, 4)),
        (slice(0, 100), slice(4, 100)),
    ]
    for rows, cols in slices:
        got = scan.read_block(rows, cols)
        want = cube[rows, cols]
        assert got.shape == want.shape
        assert got.dtype == want.dtype and got.dtype.isnative
        assert got.flags.c_contiguous and got.flags.writeable
        assert np.array_equal(got, want), (rows, cols)
    # an engine Block (anything with .rows/.cols) is accepted too
    block = SimpleNamespace(index=0, rows=slice(2, 4), cols=slice(1, 5))
    assert np.array_equal(scan.read_block(block), cube[2:4, 1:5])


@pytest.mark.parametrize("offset", [0, 3, 5000])
@pytest.mark.parametrize("byte_order,record_by", [("little-endian", "vector"),
                                                  ("big-endian", "vector"),
                                                  ("little-endian", "image")])
def test_view_block_equals_numpy_slicing_and_is_read_only(tmp_path, offset, byte_order, record_by):
    cube = random_cube((7, 9, 5), "unsigned", 2, seed=4)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, byte_order=byte_order, record_by=record_by,
                     offset=offset)
    scan = open_scan(rpl)
    zero_copy = byte_order == "little-endian" and record_by == "vector"
    for rows, cols in [(slice(None), slice(None)), (slice(2, 5), slice(None)), (slice(6, 7), slice(0, 9)),
                       (slice(2, 5), slice(3, 9)), (slice(1, 7, 2), slice(None)), (slice(3, 3), slice(None))]:
        got = scan.view_block(rows, cols)
        assert np.array_equal(got, cube[rows, cols]), (rows, cols)
        whole_rows = cols == slice(None) or cols == slice(0, 9)
        mapped = zero_copy and whole_rows and rows.step is None and len(range(*rows.indices(7))) > 0
        # the zero-copy view is a mapping of the file that refuses writes; the rest a copy
        assert got.flags.writeable is not mapped, (rows, cols)
    view = scan.view_block(slice(1, 4), slice(None))
    if zero_copy:
        with pytest.raises(ValueError):
            view[0, 0, 0] = 1
    del view
    assert np.array_equal(scan.read_all(), cube)


def test_read_block_rejects_non_slices(tmp_path):
    rpl = numpy_pair(tmp_path, random_cube((2, 2, 2), "unsigned", 1), "unsigned", 1)
    with pytest.raises(ParameterError, match="slices"):
        open_scan(rpl).read_block(0, slice(None))


def test_returned_arrays_are_copies_and_raw_is_never_written(tmp_path):
    cube = random_cube((4, 5, 6), "unsigned", 2)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, byte_order="big-endian")
    raw = tmp_path / "scan.raw"
    os.utime(raw, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(tmp_path)
    scan = open_scan(rpl)
    block = scan.read_block(slice(0, 2), slice(0, 2))
    block[...] = 0
    whole = scan.read_all()
    whole += 1
    assert np.array_equal(scan.read_all(), cube)
    assert snapshot(tmp_path) == before
    assert raw.stat().st_mtime_ns == 1_000_000_000


def test_raw_changed_after_open_is_detected(tmp_path):
    rpl = numpy_pair(tmp_path, random_cube((2, 3, 4), "unsigned", 2), "unsigned", 2)
    scan = open_scan(rpl)
    raw = tmp_path / "scan.raw"
    with open(raw, "ab") as f:
        f.write(b"xx")
    with pytest.raises(RawSizeError, match="scan.raw"):
        scan.read_all()
    raw.unlink()
    with pytest.raises(MissingFileError, match="scan.raw"):
        scan.read_block(slice(0, 1), slice(0, 1))


# --------------------------------------------------------------------------- pickling


def test_pickled_scan_reads_in_the_copy(tmp_path):
    cube = random_cube((6, 5, 8), "float", 4, seed=9)
    rpl = numpy_pair(tmp_path, cube, "float", 4, byte_order="big-endian", record_by="image")
    scan = open_scan(rpl)
    payload = pickle.dumps(scan)
    assert len(payload) < 4096  # paths + header only, never data
    copy = pickle.loads(payload)
    assert isinstance(copy, RippleScan)
    assert copy.header == scan.header and copy.raw_path == scan.raw_path
    assert same_bits(copy.read_block(slice(1, 4), slice(2, 5)), cube[1:4, 2:5])
    assert same_bits(copy.read_all(), cube)


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    "dtype", ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8", ">u2", ">f8"]
)
@pytest.mark.parametrize("record_by", RECORD_BYS)
@pytest.mark.parametrize("byte_order", ["little-endian", "big-endian"])
def test_write_ripple_round_trip(tmp_path, dtype, record_by, byte_order):
    dt = np.dtype(dtype)
    kind = {"u": "unsigned", "i": "signed", "f": "float"}[dt.kind]
    cube = random_cube((3, 4, 5), kind, dt.itemsize)
    cube = cube.astype(dt.newbyteorder("=")).astype(dt)
    rpl = write_ripple(tmp_path / "w.rpl", cube, record_by=record_by, byte_order=byte_order)
    assert rpl == tmp_path / "w.rpl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.raw", "w.rpl"]
    scan = open_scan(rpl)
    assert scan.header.record_by == record_by and scan.header.byte_order == byte_order
    assert same_bits(scan.read_all(), cube.astype(dt.newbyteorder("=")))


@pytest.mark.parametrize("style", ["bruker", "rosettasciio", "ev-per-chan", None])
@pytest.mark.parametrize("key_case", ["lower", "mixed"])
@pytest.mark.parametrize("first_line", [False, True])
def test_write_ripple_header_options(tmp_path, style, key_case, first_line):
    cube = random_cube((2, 3, 16), "unsigned", 2)
    calibration = (0.0100021, 0.0 if style == "ev-per-chan" else -0.956)
    rpl = write_ripple(
        tmp_path / "scan",
        cube,
        offset=17,
        calibration=calibration,
        calibration_style=style,
        key_case=key_case,
        first_key_value_line=first_line,
    )
    assert rpl.name == "scan.rpl"
    text = rpl.read_text()
    assert text.startswith("key\tvalue\n") == first_line
    assert ("data-Length" in text) == (key_case == "mixed")
    scan = open_scan(rpl)
    assert scan.header.offset == 17
    assert (tmp_path / "scan.raw").read_bytes()[:17] == bytes(17)
    assert np.array_equal(scan.read_all(), cube)
    if style is None:
        assert scan.calibration is None
    else:
        assert scan.calibration == pytest.approx(calibration, rel=1e-12, abs=1e-15)


def test_write_ripple_uppercase_rpl_gets_uppercase_raw(tmp_path):
    cube = random_cube((2, 2, 3), "unsigned", 1)
    write_ripple(tmp_path / "S.RPL", cube)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S.RAW", "S.RPL"]
    assert np.array_equal(open_scan(tmp_path / "S.RPL").read_all(), cube)


def test_write_ripple_refuses_existing_unless_overwrite(tmp_path):
    cube = random_cube((2, 2, 3), "unsigned", 2)
    write_ripple(tmp_path / "a.rpl", cube)
    before = snapshot(tmp_path)
    with pytest.raises(OutputExistsError, match="a.r"):
        write_ripple(tmp_path / "a.rpl", cube + 1)
    assert snapshot(tmp_path) == before
    write_ripple(tmp_path / "a.rpl", cube + 1, overwrite=True)
    assert np.array_equal(open_scan(tmp_path / "a.rpl").read_all(), cube + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.raw", "a.rpl"]


@pytest.mark.parametrize(
    "cube,kwargs,problem",
    [
        (np.zeros((2, 3)), {}, "height, width, channels"),
        (np.zeros((2, 3, 0)), {}, "height, width, channels"),
        (np.zeros((2, 2, 2), np.complex64), {}, "cannot be stored"),
        (np.zeros((2, 2, 2), np.float16), {}, "cannot be stored"),
        (np.zeros((2, 2, 2), bool), {}, "cannot be stored"),
        (np.zeros((2, 2, 2), np.uint8), {"offset": -1}, "offset"),
        (np.zeros((2, 2, 2), np.uint8), {"record_by": "diagonal"}, "record_by"),
        (np.zeros((2, 2, 2), np.uint8), {"byte_order": "pdp"}, "byte_order"),
        (np.zeros((2, 2, 2), np.uint8), {"key_case": "upper"}, "key_case"),
        (np.zeros((2, 2, 2), np.uint8), {"calibration": (0.0, 1.0)}, "gain"),
        (np.zeros((2, 2, 2), np.uint8), {"calibration": (0.01, float("nan"))}, "finite"),
        (np.zeros((2, 2, 2), np.uint8), {"calibration": "x"}, "calibration"),
        (
            np.zeros((2, 2, 2), np.uint8),
            {"calibration": (0.01, 0), "calibration_style": "hyperspy"},
            "calibration_style",
        ),
        (
            np.zeros((2, 2, 2), np.uint8),
            {"calibration": (0.01, 0.5), "calibration_style": "ev-per-chan"},
            "offset",
        ),
    ],
)
def test_write_ripple_bad_arguments_write_nothing(tmp_path, cube, kwargs, problem):
    with pytest.raises(ParameterError, match=problem):
        write_ripple(tmp_path / "bad.rpl", cube, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_ripple_missing_folder(tmp_path):
    with pytest.raises(OutputLocationError, match="nowhere"):
        write_ripple(tmp_path / "nowhere" / "a.rpl", np.zeros((1, 1, 1), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_ripple_writer_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    cube = rng.poisson(5.0, size=(10, 7, 32)).astype(np.uint16)
    with RippleWriter(tmp_path / "syn.rpl", cube.shape, "uint16", (0.02, -0.1)) as w:
        for start in (8, 0, 4):  # any order
            w.write_rows(start, cube[start : start + 4].astype(np.float64))
        assert not (tmp_path / "syn.rpl").exists()  # header only on close
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn.raw", "syn.rpl"]
    scan = open_scan(tmp_path / "syn.rpl")
    assert scan.header.record_by == "vector" and scan.dtype == np.uint16
    assert scan.calibration == pytest.approx((0.02, -0.1))
    assert np.array_equal(scan.read_all(), cube)


def test_ripple_writer_removes_everything_on_exception(tmp_path):
    class BoomError(Exception):
        pass

    with pytest.raises(BoomError):
        with RippleWriter(tmp_path / "syn", (4, 3, 8), "float32") as w:
            w.write_rows(0, np.ones((2, 3, 8)))
            raise BoomError
    assert list(tmp_path.iterdir()) == []


def test_ripple_writer_bad_block_and_missing_rows(tmp_path):
    with pytest.raises(ParameterError, match="shape"):
        with RippleWriter(tmp_path / "syn", (4, 3, 8), "uint8") as w:
            w.write_rows(0, np.ones((2, 3, 7)))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ParameterError, match="outside"):
        with RippleWriter(tmp_path / "syn", (4, 3, 8), "uint8") as w:
            w.write_rows(3, np.ones((2, 3, 8)))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ParameterError, match="2:4 were never written"):
        with RippleWriter(tmp_path / "syn", (4, 3, 8), "uint8") as w:
            w.write_rows(0, np.ones((2, 3, 8)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "shape,dtype,problem",
    [((4, 3), "u2", "shape"), ((4, 0, 2), "u2", "shape"), ((2, 2, 2), "c8", "cannot be stored")],
)
def test_ripple_writer_bad_arguments(tmp_path, shape, dtype, problem):
    with pytest.raises(ParameterError, match=problem):
        RippleWriter(tmp_path / "syn", shape, dtype)
    assert list(tmp_path.iterdir()) == []


def test_ripple_writer_refuses_existing(tmp_path):
    (tmp_path / "syn.raw").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="syn.raw"):
        RippleWriter(tmp_path / "syn", (1, 1, 1), "u1")
    assert [p.name for p in tmp_path.iterdir()] == ["syn.raw"]


# --------------------------------------------------------------------------- bad input


def _valid_header(**over) -> str:
    keys = {
        "width": "3",
        "height": "2",
        "depth": "4",
        "offset": "0",
        "data-length": "2",
        "data-type": "unsigned",
        "byte-order": "little-endian",
        "record-by": "vector",
        **over,
    }
    return "".join(f"{k}\t{v}\n" for k, v in keys.items() if v is not None)


def _bad_pair(folder: Path, header: str | bytes, raw_size: int = 48) -> Path:
    rpl = folder / "bad.rpl"
    if isinstance(header, str):
        header = header.encode("latin-1")
    rpl.write_bytes(header)
    (folder / "bad.raw").write_bytes(bytes(raw_size))
    return rpl


BAD_HEADERS = {
    # name: (header, [fragments the message must contain])
    "missing-width": (_valid_header(width=None), ["'width'", "lacks"]),
    "missing-height": (_valid_header(height=None), ["'height'", "lacks"]),
    "missing-depth": (_valid_header(depth=None), ["'depth'", "lacks"]),
    "missing-data-length": (_valid_header(**{"data-length": None}), ["'data-length'", "lacks"]),
    "missing-data-type": (_valid_header(**{"data-type": None}), ["'data-type'", "lacks"]),
    "width-not-a-number": (_valid_header(width="abc"), ["'width'", "'abc'", "whole number"]),
    "width-fraction": (_valid_header(width="2.5"), ["'width'", "'2.5'", "whole number"]),
    "width-empty": (_valid_header(width=""), ["'width'", "whole number"]),
    "height-negative": (_valid_header(height="-3"), ["'height'", "'-3'", "negative"]),
    "depth-zero": (_valid_header(depth="0"), ["'depth'", "'0'", "zero"]),
    "offset-negative": (_valid_header(offset="-1"), ["'offset'", "'-1'", "negative"]),
    "width-huge": (_valid_header(width="9" * 40), ["'width'", "too large"]),
    "width-2-64": (_valid_header(width=str(2**64)), ["'width'", "absurdly large"]),
    "offset-huge": (_valid_header(offset=str(2**51)), ["'offset'", "absurdly large"]),
    "product-overflow": (
        _valid_header(width=str(2**40), height=str(2**40), depth=str(2**40)),
        ["absurdly large", "2**50"],
    ),
    "product-just-too-big": (
        _valid_header(width=str(2**24), height=str(2**24), depth="4", **{"data-length": "2"}),
        ["absurdly large"],
    ),
    "data-length-3": (_valid_header(**{"data-length": "3"}), ["'data-length'", "'3'", "1, 2, 4"]),
    "data-length-16": (_valid_header(**{"data-length": "16"}), ["'data-length'", "'16'"]),
    "data-type-complex": (
        _valid_header(**{"data-type": "complex"}),
        ["'data-type'", "'complex'", "unsigned, signed, float"],
    ),
    "float-length-2": (
        _valid_header(**{"data-type": "float"}),
        ["'data-length'", "'2'", "float"],
    ),
    "float-length-1": (
        _valid_header(**{"data-type": "float", "data-length": "1"}),
        ["'data-length'", "'1'", "float"],
    ),
    "byte-order-bad": (
        _valid_header(**{"byte-order": "middle-endian"}),
        ["'byte-order'", "'middle-endian'"],
    ),
    "record-by-bad": (_valid_header(**{"record-by": "diagonal"}), ["'record-by'", "'diagonal'"]),
    "conflicting-duplicate": (
        _valid_header() + "data-Length\t4\n",
        ["'data-length'", "twice", "'2'", "'4'"],
    ),
    "calibration-not-a-number": (
        _valid_header() + "depthscaleincrement\tabc\n",
        ["'depthscaleincrement'", "'abc'", "not a number"],
    ),
    "calibration-nan": (
        _valid_header() + "depth-scale\tnan\ndepth-units\teV\n",
        ["'depth-scale'", "'nan'"],
    ),
    "calibration-overflow": (
        _valid_header() + "ev-per-chan\t1e999\n",
        ["'ev-per-chan'", "'1e999'", "finite"],
    ),
    "empty": ("", ["empty"]),
    "only-comments": (";nothing here\n# at all\n\n", ["lacks"]),
    "binary-garbage": (bytes(range(256)) * 8, ["binary"]),
    "binary-no-nul": (bytes(range(1, 32)) * 40 + b"width 3\n", ["binary"]),
}


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_bad_header_is_refused(tmp_path, name):
    header, fragments = BAD_HEADERS[name]
    rpl = _bad_pair(tmp_path, header)
    before = snapshot(tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(ScanFormatError) as info:
            open_scan(rpl)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # refused before any allocation of the requested size
    assert not isinstance(info.value, RawSizeError)
    message = str(info.value)
    assert "bad.rpl" in message and info.value.path == str(rpl)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert snapshot(tmp_path) == before  # nothing written, nothing changed
    # read_rpl alone gives the same error
    with pytest.raises(type(info.value)):
        read_rpl(rpl)


def test_header_too_large(tmp_path):
    header = _valid_header() + ("; padding comment line\n" * 50_000)
    assert len(header) > 2**20
    rpl = _bad_pair(tmp_path, header)
    before = snapshot(tmp_path)
    with pytest.raises(ScanFormatError, match=r"bad\.rpl.*too large") as info:
        open_scan(rpl)
    assert str(2**20) in str(info.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("actual", [0, 47, 49, 48 * 2, 1])
def test_raw_size_mismatch(tmp_path, actual):
    rpl = _bad_pair(tmp_path, _valid_header(), raw_size=actual)  # expects 3*2*4*2 = 48
    before = snapshot(tmp_path)
    with pytest.raises(RawSizeError) as info:
        open_scan(rpl)
    message = str(info.value)
    assert "bad.raw" in message and "bad.rpl" in message
    assert "expected 48" in message and f"actual {actual}" in message
    assert snapshot(tmp_path) == before


def test_raw_size_mismatch_with_offset(tmp_path):
    rpl = _bad_pair(tmp_path, _valid_header(offset="10"), raw_size=48)
    with pytest.raises(RawSizeError, match=r"expected 58, actual 48"):
        open_scan(rpl)


def test_absurd_header_with_matching_small_file_is_still_refused(tmp_path):
    # a header asking for 2**51 bytes: refused from the numbers alone, nothing mapped
    rpl = _bad_pair(tmp_path, _valid_header(width=str(2**25), height=str(2**25), depth="2"), 0)
    with pytest.raises(ScanFormatError, match="absurdly large"):
        open_scan(rpl)


def test_missing_raw(tmp_path):
    (tmp_path / "scan.rpl").write_text(_valid_header())
    before = snapshot(tmp_path)
    with pytest.raises(MissingFileError) as info:
        open_scan(tmp_path / "scan.rpl")
    assert "scan.raw" in str(info.value) and "does not exist" in str(info.value)
    assert snapshot(tmp_path) == before


def test_missing_rpl(tmp_path):
    (tmp_path / "scan.raw").write_bytes(bytes(48))
    before = snapshot(tmp_path)
    with pytest.raises(MissingFileError) as info:
        open_scan(tmp_path / "scan.raw")
    assert "scan.rpl" in str(info.value) and "does not exist" in str(info.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("given", ["nothing.rpl", "nothing.raw", "nothing"])
def test_missing_both(tmp_path, given):
    with pytest.raises(MissingFileError, match="nothing") as info:
        open_scan(tmp_path / given)
    assert "does not exist" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    if given.endswith(".rpl"):
        with pytest.raises(MissingFileError, match="nothing.rpl"):
            read_rpl(tmp_path / given)


def test_not_a_scan(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ScanFormatError, match=r"notes\.txt.*not a ripple scan"):
        open_scan(tmp_path / "notes.txt")
    (tmp_path / "dir.rpl").mkdir()
    (tmp_path / "dir.raw").write_bytes(b"")
    with pytest.raises(ScanFormatError, match=r"dir\.rpl.*directory"):
        open_scan(tmp_path / "dir.rpl")


def test_every_error_is_a_maxrf_error():
    for cls in (ScanFormatError, RawSizeError, MissingFileError):
        assert issubclass(cls, MaxrfError)


# --------------------------------------------------------------------------- interop


def test_rosettasciio_reads_what_we_read(tmp_path):
    """Cross-check with rosettasciio on a file both readers accept (rsciio needs tabs)."""
    from rsciio import ripple as rsciio_ripple
    cube = random_cube((3, 4, 6), "unsigned", 2, seed=11)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, record_by="vector")
    theirs = rsciio_ripple.file_reader(str(rpl))[0]["data"]
    assert np.array_equal(open_scan(rpl).read_all(), theirs)


def test_we_read_rosettasciio_output(tmp_path):
    from rsciio import ripple as rsciio_ripple
    cube = random_cube((3, 4, 6), "unsigned", 2, seed=12)
    axes = [
        {"size": 3, "index_in_array": 0, "name": "height", "scale": 1, "offset": 0,
         "units": "<undefined>", "navigate": True},
        {"size": 4, "index_in_array": 1, "name": "width", "scale": 1, "offset": 0,
         "units": "<undefined>", "navigate": True},
        {"size": 6, "index_in_array": 2, "name": "Energy", "scale": 0.010002,
         "offset": -0.956, "units": "keV", "navigate": False},
    ]  # fmt: skip
    rsciio_ripple.file_writer(
        str(tmp_path / "r.rpl"),
        {"data": cube, "axes": axes, "metadata": {"General": {"title": "t"}}},
    )
    scan = open_scan(tmp_path / "r.rpl")
    assert np.array_equal(scan.read_all(), cube)
    assert scan.calibration == pytest.approx((0.010002, -0.956))


@pytest.mark.timeout(20)
def test_fifo_header_is_refused_without_blocking(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.rpl")
    (tmp_path / "pipe.raw").write_bytes(b"")
    with pytest.raises(ScanFormatError, match=r"pipe\.rpl.*not a regular file"):
        open_scan(tmp_path / "pipe.rpl")


# --------------------------------------------------------------------------- prefetch


def test_prefetch_asks_for_every_byte_of_the_rows_in_pieces(tmp_path, monkeypatch):
    # Linux reads at most the device's read-ahead per WILLNEED call and drops the rest of a
    # longer range: the rows must be asked for in pieces no longer than PREFETCH_PIECE
    import maxrf.io.ripple.scan as scan_module

    cube = random_cube((9, 5, 11), "unsigned", 2, seed=5)
    rpl = numpy_pair(tmp_path, cube, "unsigned", 2, offset=13)
    asked = []
    monkeypatch.setattr(scan_module, "PREFETCH_PIECE", 100)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, at, n, advice: asked.append((at, n, advice)))
    open_scan(rpl).prefetch(slice(2, 7))
    row = 5 * 11 * 2  # bytes of one row of the file
    assert all(n <= 100 and advice == os.POSIX_FADV_WILLNEED for _, n, advice in asked)
    starts = [at for at, _, _ in asked]
    ends = [at + n for at, n, _ in asked]
    assert starts[0] == 13 + 2 * row and ends[-1] == 13 + 7 * row
    assert starts[1:] == ends[:-1]  # contiguous, no gap and no overlap
