"""Every I/O failure is one line, checked before the long work; the viewer logs dropped
connections in one line; Python errors speak Python."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest

from maxrf.errors import OutputExistsError

from conftest import poisson_cube, write_pair


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from maxrf.convert import convert

    folder = tmp_path_factory.mktemp("outputs")
    ds = convert(write_pair(folder, poisson_cube(2, shape=(30, 40, 32))), calibrate=False)
    rng = np.random.default_rng(0)
    fe = rng.normal(0, 1, (30, 40)).astype(np.float32)
    fe[10:12, 10:12] += 40
    ds.write_layer("element_maps", {"maps": fe[None], "chi2": np.ones_like(fe)},
                   {"elements": ["Fe"], "method": "fit"})
    return ds


@pytest.fixture
def blocked(tmp_path):
    """A place nothing can be written in, even as root: a path under a regular file."""
    f = tmp_path / "a-file"
    f.write_text("x")
    return f / "sub"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_report_unwritable_fails_first_in_one_line(ds, blocked, capsys, monkeypatch):
    import maxrf.report.build as build
    from maxrf.cli import main

    def not_now(*a, **k):
        raise AssertionError("the report was built before the output was checked")

    monkeypatch.setattr(build, "_document", not_now)
    assert main(["report", str(ds.path), "-o", str(blocked / "r.html")]) == 1
    assert "a-file" in _one_line(capsys)


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_speckles_unwritable_one_line_before_work(ds, blocked, capsys, option):
    from maxrf.cli import main

    suffix = ".csv" if option == "--out" else ".png"
    assert main(["speckles", str(ds.path), option, str(blocked / f"s{suffix}")]) == 1
    assert "a-file" in _one_line(capsys)
    assert "speckles" not in ds.layers  # nothing computed and stored first


@pytest.mark.parametrize("option", ["--classes", "--out", "--plot"])
def test_segment_unwritable_or_folder_one_line_before_work(ds, blocked, tmp_path, capsys, option):
    from maxrf.cli import main

    for target, said in ((blocked / "s.out", "a-file"), (tmp_path, "is a folder")):
        assert main(["segment", str(ds.path), "--element", "Fe", option, str(target)]) == 1
        assert said in _one_line(capsys)
        assert "segmentation" not in ds.layers  # refused before segmenting and storing


def test_decompose_unwritable_out_one_line_before_work(blocked, tmp_path, capsys):
    from maxrf.cli import main
    from maxrf.convert import convert

    ds = convert(write_pair(tmp_path, poisson_cube(4, shape=(20, 24, 64))), calibrate=False)
    ds.write_layer("calibration", {"energies": np.arange(64) * 0.3},  # decompose can run
                   {"gain_keV": 0.3, "offset_keV": 0.0, "method": "manual", "peaks": []})
    for target, said in ((blocked, "a-file"), (blocked.parent, "is a file")):
        assert main(["decompose", str(ds.path), "--components", "2", "--quiet",
                     "--out", str(target)]) == 1
        assert said in _one_line(capsys)
        assert "decomposition" not in ds.layers  # refused before the pass, nothing stored


def test_probe_new_folder_creates_nothing(tmp_path):
    from maxrf.errors import OutputLocationError
    from maxrf.outputs import probe_new_folder

    assert probe_new_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []  # checked, not made: no empty folder left
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputLocationError, match="is a file"):
        probe_new_folder(tmp_path / "f" / "a" / "b")


def test_demo_unwritable_one_line(blocked, capsys):
    from maxrf.cli import main

    assert main(["demo", str(blocked / "demo")]) == 1
    assert "a-file" in _one_line(capsys)


def test_maps_unwritable_out_one_line_nothing_left(ds, blocked, tmp_path, capsys):
    from maxrf.cli import main

    assert main(["maps", str(ds.path), "--peaks", "--out", str(blocked)]) == 1
    assert "a-file" in _one_line(capsys)
    assert "peak_maps" not in ds.layers  # refused before the pass over the cube


def test_report_folder_vanishing_mid_build_is_one_line(ds, tmp_path, capsys, monkeypatch):
    """The output folder checked at the start is gone when the report is written."""
    import maxrf.report.build as build
    from maxrf.cli import main

    folder = tmp_path / "gone"
    folder.mkdir()
    real = build._document

    def vanish(*a, **k):
        pieces = real(*a, **k)
        folder.rmdir()  # really removed, by someone else, during the long work
        return pieces

    monkeypatch.setattr(build, "_document", vanish)
    assert main(["report", str(ds.path), "-o", str(folder / "r.html")]) == 1
    line = _one_line(capsys)
    assert "gone" in line and "No such file" in line
    assert not folder.exists()


def test_write_error_of_any_kind_is_one_line(tmp_path, monkeypatch):
    """Not only 'permission denied': a vanished folder or a full disk is a maxrf error too."""
    import errno

    from maxrf.errors import DiskFullError
    from maxrf.speckles import write_csv

    real_open = open

    def full(path, *a, **k):
        if str(path).endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(DiskFullError, match="disk is full"):
        write_csv({"a": np.arange(3)}, tmp_path / "t.csv")
    assert list(tmp_path.iterdir()) == []


def test_python_error_speaks_python(tmp_path):
    from maxrf.convert import convert

    rpl = write_pair(tmp_path, poisson_cube(3, shape=(4, 5, 8)))
    convert(rpl, calibrate=False)
    with pytest.raises(OutputExistsError, match=r"overwrite=True"):
        convert(rpl, calibrate=False)


def test_viewer_logs_a_dropped_connection_in_one_line(ds, capfd):
    from maxrf.viewer import make_server

    server = make_server(ds, port=0)
    server.start_thread()
    try:
        for _ in range(3):  # a browser resetting connections mid-request
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
        time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines and all(x.startswith("maxrf viewer: connection from 127.0.0.1 dropped") for x in lines)
