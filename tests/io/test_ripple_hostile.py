"""Property-based tests of the ripple reader against generated, often hostile, headers.

* valid headers (random casing, separators, line endings, comments, key order, optional
  keys, calibration keys) over random raw bytes read exactly as numpy reads those bytes;
* headers with one certain defect (missing key, garbage / negative / zero / huge /
  overflowing value, unsupported choice, wrong raw size, binary header) raise a
  :class:`maxrf.errors.MaxrfError` subclass naming the file, and nothing else;
* a free "soup" of random lines either reads consistently or raises a MaxrfError; never
  another exception, never a hang (hypothesis deadline), never a Python allocation
  larger than the raw file (tracemalloc).

Examples tried per run (``max_examples``): valid 150, defect 250, soup 200, binary 60,
times ``MAXRF_HYPOTHESIS_SCALE`` (the fault benchmark runs more).
"""

from __future__ import annotations

import os
import re
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxrf.errors import MaxrfError
from maxrf.io.ripple import open_scan

SETTINGS = dict(
    deadline=2000,  # ms per example: a hang or quadratic blow-up fails the test
    database=None,  # write nothing into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_SCALE = float(os.environ.get("MAXRF_HYPOTHESIS_SCALE", "1"))
N_VALID, N_DEFECT, N_SOUP, N_BINARY = (max(1, round(n * _SCALE)) for n in (150, 250, 200, 60))
ALLOC_SLACK = 256 * 1024  # bytes of Python bookkeeping allowed beyond the data itself

DTYPES = [("unsigned", n) for n in (1, 2, 4, 8)] + [("signed", n) for n in (1, 2, 4, 8)]
DTYPES += [("float", 4), ("float", 8)]
KIND = {"unsigned": "u", "signed": "i", "float": "f"}
CHOICES = {
    "data-type": ("unsigned", "signed", "float"),
    "byte-order": ("little-endian", "big-endian", "dont-care"),
    "record-by": ("vector", "image", "dont-care"),
}
# characters that end a line for str.splitlines, or start a comment
LINE_BREAKING = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029;"
value_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKING),
    max_size=30,
)
# text a real header could hold in a free-form value (no control characters)
printable_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=";"),
    max_size=30,
)


def recase(draw, word: str) -> str:
    mode = draw(st.sampled_from(["lower", "upper", "title", "random"]))
    if mode == "upper":
        return word.upper()
    if mode == "title":
        return word.title()
    if mode == "random":
        flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
        return "".join(c.upper() if f else c for c, f in zip(word, flips))
    return word


@st.composite
def valid_scans(draw):
    """(header text, raw bytes, expected cube) for a small valid scan."""
    h = draw(st.integers(1, 4))
    w = draw(st.integers(1, 4))
    d = draw(st.integers(1, 8))
    data_type, data_length = draw(st.sampled_from(DTYPES))
    byte_order = draw(st.sampled_from(CHOICES["byte-order"]))
    record_by = draw(st.sampled_from(CHOICES["record-by"]))
    offset = draw(st.integers(0, 20))
    items = {
        "width": str(w),
        "height": str(h),
        "depth": str(d),
        "data-length": str(data_length),
        "data-type": data_type,
    }
    if offset or draw(st.booleans()):
        items["offset"] = draw(st.sampled_from([str(offset), f"+{offset}", f"00{offset}"]))
    if byte_order != "dont-care" or draw(st.booleans()):
        items["byte-order"] = byte_order
    if record_by != "vector" or draw(st.booleans()):
        items["record-by"] = record_by
    calibration = draw(
        st.sampled_from(
            [
                None,
                ("depthscaleorigin", "-0.956", "depthscaleincrement", "0.010002"),
                ("depth-origin", "-956", "depth-scale", "10.002", "depth-units", "eV"),
                ("depth-scale", "0.01", "depth-units", "keV", "ev-per-chan", "0"),
                ("ev-per-chan", "20"),
            ]
        )
    )
    if calibration:
        items.update(zip(calibration[::2], calibration[1::2]))
    for _ in range(draw(st.integers(0, 3))):  # unknown keys are ignored
        key = draw(st.sampled_from(["title", "date", "signal", "x-unknown", "beam-kv"]))
        items[key] = draw(printable_text).strip()
    keys = draw(st.permutations(list(items)))
    lines = []
    for key in keys:
        sep = draw(st.sampled_from(["\t", " ", "  ", " \t ", "\t\t"]))
        value = items[key]
        if key in CHOICES:
            value = recase(draw, value)
        lines.append(f"{recase(draw, key)}{sep}{value}".rstrip() if value else recase(draw, key))
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", ";comment", "# another", "   ", "; x\tdepth 0"])))
    if draw(st.booleans()):
        lines.insert(0, draw(st.sampled_from(["key\tvalue", "KEY value", "Key\t\tValue"])))
    if draw(st.booleans()):
        lines.insert(0, ";File created by a generator")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))

    n = h * w * d * data_length
    payload = draw(st.binary(min_size=n, max_size=n))
    raw = draw(st.binary(min_size=offset, max_size=offset)) + payload
    # the oracle: numpy reading the payload, independently of maxrf
    order = ">" if byte_order == "big-endian" else "<"
    stored = np.dtype(f"{order}{KIND[data_type]}{data_length}")
    arr = np.frombuffer(payload, dtype=stored)
    arr = (
        arr.reshape(d, h, w).transpose(1, 2, 0)
        if record_by == "image"
        else arr.reshape(h, w, d)
    )
    # bit-exact native-order expectation via unsigned ints (NaN payloads stay put)
    bits = np.ascontiguousarray(arr).view(f"{order}u{data_length}").astype(f"=u{data_length}")
    return text, raw, bits, arr.dtype.newbyteorder("=")


def write_pair(folder: Path, header: str | bytes, raw: bytes) -> Path:
    rpl = folder / "hostile.rpl"
    rpl.write_bytes(header.encode("utf-8") if isinstance(header, str) else header)
    (folder / "hostile.raw").write_bytes(raw)
    return rpl


def traced(fn):
    """Run ``fn()``; return (result or exception, peak Python allocation in bytes)."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - inspected by the caller
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def read_everything(rpl: Path):
    scan = open_scan(rpl)
    return scan, scan.read_all()


@settings(max_examples=N_VALID, **SETTINGS)
@given(valid_scans())
def test_valid_headers_read_exactly_as_numpy(case):
    text, raw, bits, native = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rpl = write_pair(folder, text, raw)
        result, peak = traced(lambda: read_everything(rpl))
        assert not isinstance(result, Exception), f"{result!r}\n{text}"
        scan, cube = result
        assert cube.dtype == native and cube.shape == bits.shape
        assert np.array_equal(cube.view(f"=u{cube.dtype.itemsize}"), bits)
        assert peak <= len(raw) + ALLOC_SLACK
        assert (folder / "hostile.raw").read_bytes() == raw
        assert sorted(p.name for p in folder.iterdir()) == ["hostile.raw", "hostile.rpl"]


# --------------------------------------------------------------------------- defects

INT_LIKE = re.compile(r"\s*[+-]?[0-9]+\s*")


def _not(pattern_ok):
    return value_text.filter(lambda v: not pattern_ok(v))


bad_dimension = st.one_of(
    st.integers(-(2**70), 0).map(str),  # zero or negative
    st.integers(2**50 + 1, 2**80).map(str),  # absurd
    st.integers(10**21, 10**60).map(str),  # too many digits
    st.floats(allow_nan=True, allow_infinity=True)
    .map(repr)
    .filter(lambda v: not INT_LIKE.fullmatch(v)),  # '2.5', 'nan', 'inf', '1e+30'
    _not(lambda v: INT_LIKE.fullmatch(v) is not None),  # garbage text
)
bad_data_length = st.one_of(
    st.integers(-(2**70), 2**70).filter(lambda n: n not in (1, 2, 4, 8)).map(str),
    _not(lambda v: INT_LIKE.fullmatch(v) is not None),
)
bad_offset = st.one_of(
    st.integers(-(2**70), -1).map(str),
    st.integers(2**50 + 1, 2**80).map(str),
    _not(lambda v: INT_LIKE.fullmatch(v) is not None),
)
bad_calibration = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1e999", "abc", "", "1..2", "0x10"]),
    value_text.filter(lambda v: not re.fullmatch(r"\s*[+-]?[0-9.,eE+-]*\s*", v)),
)


def _bad_choice(key):
    return value_text.filter(lambda v: v.strip().lower() not in CHOICES[key])


@st.composite
def defective_scans(draw):
    """(header text or bytes, raw bytes) with at least one certain defect."""
    h, w, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    items = {
        "width": str(w),
        "height": str(h),
        "depth": str(d),
        "offset": "0",
        "data-length": "2",
        "data-type": "unsigned",
        "byte-order": "little-endian",
        "record-by": "vector",
    }
    size = h * w * d * 2
    defect = draw(
        st.sampled_from(
            [
                "missing",
                "dimension",
                "data-length",
                "offset",
                "choice",
                "float-length",
                "raw-size",
                "calibration",
                "conflict",
            ]
        )
    )
    if defect == "missing":
        del items[draw(st.sampled_from(["width", "height", "depth", "data-length", "data-type"]))]
    elif defect == "dimension":
        items[draw(st.sampled_from(["width", "height", "depth"]))] = draw(bad_dimension)
    elif defect == "data-length":
        items["data-length"] = draw(bad_data_length)
    elif defect == "offset":
        items["offset"] = draw(bad_offset)
    elif defect == "choice":
        key = draw(st.sampled_from(sorted(CHOICES)))
        items[key] = draw(_bad_choice(key))
    elif defect == "float-length":
        items["data-type"] = "float"
        items["data-length"] = draw(st.sampled_from(["1", "2"]))
    elif defect == "raw-size":
        size = draw(st.integers(0, 4 * size + 8).filter(lambda n: n != h * w * d * 2))
    elif defect == "calibration":
        key = draw(st.sampled_from(["depthscaleincrement", "ev-per-chan", "depth-scale"]))
        items[key] = draw(bad_calibration)
        items["depth-units"] = "eV"
    elif defect == "conflict":
        key = draw(st.sampled_from(["width", "data-length", "data-type", "record-by"]))
        other = {"width": str(w + 1), "data-length": "4", "data-type": "signed"}
        items[key + " "] = other.get(key, "image")  # a second, different line for key
    lines = []
    for key in draw(st.permutations(list(items))):
        sep = draw(st.sampled_from(["\t", " ", " \t"]))
        lines.append(f"{recase(draw, key.strip())}{sep}{items[key]}")
    text = "\n".join(lines) + "\n"
    return text, bytes(size), defect


@settings(max_examples=N_DEFECT, **SETTINGS)
@given(defective_scans())
def test_defective_headers_raise_maxrf_errors(case):
    text, raw, defect = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rpl = write_pair(folder, text, raw)
        result, peak = traced(lambda: read_everything(rpl))
        assert isinstance(result, MaxrfError), f"{defect}: {result!r}\n{text}"
        assert "hostile.r" in str(result)
        assert peak <= len(raw) + ALLOC_SLACK
        assert sorted(p.name for p in folder.iterdir()) == ["hostile.raw", "hostile.rpl"]


# --------------------------------------------------------------------------- soup

KEYS = [
    "width",
    "height",
    "depth",
    "offset",
    "data-length",
    "data-type",
    "byte-order",
    "record-by",
    "depthscaleorigin",
    "depthscaleincrement",
    "depth-scale",
    "depth-origin",
    "depth-units",
    "ev-per-chan",
    "key",
]
soup_value = st.one_of(
    st.integers(-3, 9).map(str),
    st.sampled_from([str(2**50), str(2**63), str(2**64 + 1), "1e3", "-0", "+2", "0x4", "٣"]),
    st.sampled_from([v for vs in CHOICES.values() for v in vs] + ["eV", "keV", "value"]),
    value_text,
)


@st.composite
def soups(draw):
    """Mostly-plausible headers: required keys usually present with mostly-sane values,
    plus random extra lines, in random order; the raw size usually fits the sane values."""
    sane = {
        "width": draw(st.integers(1, 4)),
        "height": draw(st.integers(1, 4)),
        "depth": draw(st.integers(1, 6)),
        "data-length": draw(st.sampled_from([1, 2, 4, 8])),
    }
    lines = []
    for key in ("width", "height", "depth", "data-length", "data-type", "offset"):
        roll = draw(st.integers(0, 9))
        if roll == 0:
            continue  # missing
        if roll == 1:
            value = draw(soup_value)
        elif key == "data-type":
            value = draw(st.sampled_from(CHOICES["data-type"]))
        elif key == "offset":
            value = str(draw(st.integers(0, 3)))
        else:
            value = str(sane[key])
        sep = draw(st.sampled_from(["\t", " ", "  "]))
        lines.append(f"{recase(draw, key)}{sep}{value}")
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(value_text))  # free garbage line
        else:
            key = recase(draw, draw(st.sampled_from(KEYS)))
            sep = draw(st.sampled_from(["\t", " ", "", "=", ":"]))
            lines.append(f"{key}{sep}{draw(soup_value)}")
    lines = draw(st.permutations(lines))
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)
    fitting = sane["width"] * sane["height"] * sane["depth"] * sane["data-length"]
    raw_size = draw(
        st.one_of(
            st.just(fitting),
            st.integers(fitting, fitting + 3),
            st.integers(0, 300),
        )
    )
    return text, raw_size


@settings(max_examples=N_SOUP, **SETTINGS)
@given(soups())
def test_random_soup_reads_consistently_or_raises_maxrf_error(case):
    text, raw_size = case
    raw = bytes(range(256)) * (raw_size // 256) + bytes(range(raw_size % 256))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rpl = write_pair(folder, text, raw)
        result, peak = traced(lambda: read_everything(rpl))
        if isinstance(result, Exception):
            assert isinstance(result, MaxrfError), f"{result!r}\n{text!r}"
            assert "hostile.r" in str(result)
        else:
            scan, cube = result
            hdr = scan.header
            assert hdr.nbytes + hdr.offset == raw_size
            payload = raw[hdr.offset :]
            expected = np.frombuffer(payload, dtype=hdr.dtype).reshape(hdr.raw_shape)
            if hdr.layout == "image":
                expected = expected.transpose(1, 2, 0)
            u = f"u{hdr.data_length}"
            want = np.ascontiguousarray(expected).view(hdr.dtype.byteorder.replace("|", "=") + u)
            assert np.array_equal(cube.view(f"={u}"), want.astype(f"={u}"))
        assert peak <= raw_size + ALLOC_SLACK
        assert (folder / "hostile.raw").read_bytes() == raw


@settings(max_examples=N_BINARY, **SETTINGS)
@given(st.binary(max_size=2048), st.integers(0, 64))
def test_binary_headers_raise_maxrf_errors_only(header, raw_size):
    with tempfile.TemporaryDirectory() as tmp:
        rpl = write_pair(Path(tmp), header, bytes(raw_size))
        result, peak = traced(lambda: read_everything(rpl))
        if isinstance(result, Exception):
            assert isinstance(result, MaxrfError), repr(result)
        assert peak <= raw_size + ALLOC_SLACK


@pytest.mark.parametrize(
    "width,height,depth,length",
    [(2**62, 2**62, 2**62, 8), (2**25, 2**25, 1, 2), (1, 1, 2**51, 1), (2**17, 2**17, 2**17, 1)],
)
def test_absurd_sizes_allocate_nothing(tmp_path, width, height, depth, length):
    text = (
        f"width {width}\nheight {height}\ndepth {depth}\ndata-length {length}\n"
        "data-type unsigned\n"
    )
    rpl = write_pair(tmp_path, text, bytes(16))
    result, peak = traced(lambda: read_everything(rpl))
    assert isinstance(result, MaxrfError) and "absurdly large" in str(result)
    assert peak < ALLOC_SLACK
