"""Header keys: a misspelt key we read is an error naming it, unknown keys are reported."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf.errors import ScanFormatError
from maxrf.io.ripple import open_scan, read_rpl

from conftest import write_pair

TYPOS = {
    "byte-ordr": ("byte-ordr\tbig-endian\n", "byte-order"),
    "recordby": ("recordby\timage\n", "record-by"),
    "ofset": ("ofset\t16\n", "offset"),
    "Depht": ("Depht\t6\n", "depth"),
}


def _pair(tmp_path, extra):
    """A ripple pair whose header has ``extra`` in place of the optional keys it misspells."""
    cube = np.arange(3 * 4 * 6, dtype=np.uint16).reshape(3, 4, 6)
    rpl = write_pair(tmp_path, cube, extra=extra)
    lines = open(rpl).read().splitlines(keepends=True)
    spelled = extra.lower().split("\t")[0]
    drop = {"byte-ordr": "byte-order", "recordby": "record-by", "ofset": "offset",
            "depht": "depth"}.get(spelled)
    open(rpl, "w").write("".join(x for x in lines if x.split("\t")[0] != drop))
    return rpl, cube


@pytest.mark.parametrize("name", sorted(TYPOS))
def test_near_miss_key_is_an_error_naming_the_key(tmp_path, name):
    extra, likely = TYPOS[name]
    rpl, _ = _pair(tmp_path, extra)
    with pytest.raises(ScanFormatError, match=f"did you mean '{likely}'") as info:
        read_rpl(rpl)
    assert "--lenient" in str(info.value) and str(rpl) in str(info.value)
    if likely == "depth":  # a required key cannot take a default: still an error
        with pytest.raises(ScanFormatError, match="lacks required key"):
            read_rpl(rpl, lenient=True)
        return
    header = read_rpl(rpl, lenient=True)
    assert len(header.warnings) == 1 and likely in header.warnings[0]


def test_unknown_keys_reported_not_errors(tmp_path):
    rpl, cube = _pair(tmp_path, "operator\tAnna\ntitle\tA drawing\nwidth-scale\t0.5\n")
    header = read_rpl(rpl)
    assert header.unknown_keys == ("operator",)  # title, width-scale: known from other writers
    assert not header.warnings
    np.testing.assert_array_equal(open_scan(rpl).read_all(), cube)


def test_convert_cli_refuses_typo_and_lenient_proceeds(tmp_path, capsys):
    from maxrf.cli import main

    rpl, cube = _pair(tmp_path, "byte-ordr\tbig-endian\nnotes\tx\n")
    assert main(["convert", rpl, "--no-calibrate", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'byte-ordr'" in err[0] and "'byte-order'" in err[0]
    assert not list(tmp_path.glob("*.datastack"))
    assert main(["convert", rpl, "--no-calibrate", "--quiet", "--lenient"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("maxrf convert: warning: ") for line in err)
    assert "byte-order" in err[0] and "notes" in err[1]


def test_convert_cli_reports_unknown_keys_without_lenient(tmp_path, capsys):
    from maxrf.cli import main

    rpl, cube = _pair(tmp_path, "operator\tAnna\n")
    assert main(["convert", rpl, "--no-calibrate", "--quiet"]) == 0  # not an error ...
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["maxrf convert: warning: header keys not used: operator"]  # ... but said
