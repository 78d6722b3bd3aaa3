"""Crash safety under SIGKILL at random moments (seeded), and ENOSPC in layer writes.

After every kill the store either opens with a complete state (the previous one or the
new one, equal to what was written) or does not exist; it never opens with partial data.

``make test`` runs :data:`KILLS` kills per operation with fixed seeds; the fault benchmark
(``benchmarks/bench_faults.py``) runs more, on other seeds, through the environment:
``MAXRF_CRASH_KILLS`` (kills per operation), ``MAXRF_CRASH_SEED`` (added to every seed) and
``MAXRF_FAULT_LOG`` (a JSON-lines file that gets one record per operation: kills and the
states found afterwards).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from maxrf import DataStack
from maxrf.convert import convert
from maxrf.errors import DiskFullError, MaxrfError

from conftest import poisson_cube, write_pair

KILLS = int(os.environ.get("MAXRF_CRASH_KILLS", "20"))
SEED_SHIFT = int(os.environ.get("MAXRF_CRASH_SEED", "0"))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed + SEED_SHIFT)


def _record(operation: str, kills: int, states: dict) -> None:
    """Append the outcome of one operation's kills to MAXRF_FAULT_LOG, when set."""
    log = os.environ.get("MAXRF_FAULT_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"operation": operation, "kills": kills, "states": states,
                                 "seed_shift": SEED_SHIFT}) + "\n")


def _timed_run(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def _kill_at(code: str, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_convert_killed_at_random_moments(tmp_path):
    old = poisson_cube(1, shape=(60, 50, 256))
    new = poisson_cube(2, shape=(60, 50, 256))
    folder_old, folder_new = tmp_path / "old", tmp_path / "new"
    folder_old.mkdir()
    folder_new.mkdir()
    out = tmp_path / "scan.datastack"
    convert(write_pair(folder_old, old), out, calibrate=False)
    rpl_new = write_pair(folder_new, new)
    code = (f"from maxrf.convert import convert\n"
            f"convert({rpl_new!r}, {str(out)!r}, calibrate=False, overwrite=True, budget=2**17)\n")
    full = _timed_run(code)
    convert(write_pair(folder_old, old), out, calibrate=False, overwrite=True)  # back to old
    rng = _rng(20261125)
    seen = {"old": 0, "new": 0}
    for delay in rng.uniform(0.0, full, KILLS):
        _kill_at(code, delay)
        ds = DataStack(out)  # must open: previous or new, complete
        cube = ds.cube.compute()
        if np.array_equal(cube, old):
            seen["old"] += 1
        else:
            np.testing.assert_array_equal(cube, new)
            np.testing.assert_array_equal(ds.max_spectrum, new.reshape(-1, 256).max(0))
            seen["new"] += 1
            convert(write_pair(folder_old, old), out, calibrate=False, overwrite=True)
    assert seen["old"] > 0  # the kills really landed mid-run
    _record("convert --overwrite", KILLS, seen)
    # dead runs' partial folders are cleaned by the next convert
    convert(rpl_new, out, calibrate=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old", "scan.datastack"]


def test_fresh_convert_killed_leaves_nothing_that_opens(tmp_path):
    cube = poisson_cube(3, shape=(60, 50, 256))
    rpl = write_pair(tmp_path, cube)
    out = tmp_path / "fresh.datastack"
    code = (f"from maxrf.convert import convert\n"
            f"convert({rpl!r}, {str(out)!r}, calibrate=False, budget=2**17)\n")
    full = _timed_run(code)
    rng = _rng(7)
    seen = {"complete": 0, "absent": 0}
    for delay in rng.uniform(0.0, full, KILLS // 2):
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        _kill_at(code, delay)
        if out.exists():
            np.testing.assert_array_equal(DataStack(out).cube.compute(), cube)
            seen["complete"] += 1
        else:
            with pytest.raises(MaxrfError):
                DataStack(out)
            seen["absent"] += 1
    _record("fresh convert", KILLS // 2, seen)


def test_layer_write_killed_at_random_moments(tmp_path):
    ds = convert(write_pair(tmp_path, poisson_cube(0, shape=(30, 30, 32))), calibrate=False)
    old = {f"m{i}": np.full((4, 30, 30), -1.0, np.float32) for i in range(8)}
    ds.write_layer("maps", old, {"state": "old"})
    code = (
        "import numpy as np\nfrom maxrf.store import write_layer\n"
        f"write_layer({str(ds.path)!r}, 'maps', "
        "{f'm{i}': np.full((4, 30, 30), float(i), np.float32) for i in range(8)}, {'state': 'new'})\n"
    )
    full = _timed_run(code)
    ds.write_layer("maps", old, {"state": "old"})
    rng = _rng(99)
    states = []
    for delay in rng.uniform(0.0, full, KILLS):
        _kill_at(code, delay)
        layer = DataStack(ds.path).read("maps")
        states.append(layer.attrs["state"])
        for i in range(8):
            expected = -1.0 if layer.attrs["state"] == "old" else float(i)
            np.testing.assert_array_equal(layer[f"m{i}"], expected)
        if layer.attrs["state"] == "new":
            ds.write_layer("maps", old, {"state": "old"})
    assert "old" in states
    _record("layer write", KILLS, {k: states.count(k) for k in ("old", "new")})
    ds.write_layer("maps", old, {"state": "old"})  # and the store has not grown
    assert len(list((ds.path / "layers").iterdir())) == 1


def test_layer_write_disk_full_keeps_previous(tmp_path, monkeypatch):
    ds = convert(write_pair(tmp_path, poisson_cube(0, shape=(10, 10, 16))), calibrate=False)
    ds.write_layer("maps", {"m": np.zeros((10, 10))}, {"state": "old"})
    import maxrf.store as store

    real = store.layers.write_array
    calls = {"n": 0}

    def full(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(store.layers, "write_array", full)
    with pytest.raises(DiskFullError, match="disk full"):
        ds.write_layer("maps", {"m": np.ones((10, 10)), "n": np.ones(3)}, {"state": "new"})
    layer = ds.read("maps")
    assert layer.attrs["state"] == "old" and (layer["m"] == 0).all()
    assert len(list((ds.path / "layers").iterdir())) == 1


#: the loop of a :class:`_Forker`: a line on stdin is a repr'd program that a forked child
#: runs (its pid goes back on stdout), or WAIT for the last child's wait status; the child
#: stays unreaped until then, so that its pid cannot be another process's when killed
_FORK_LOOP = """
import os, sys, traceback
for line in sys.stdin:
    if line == "WAIT\\n":
        print(os.waitpid(pid, 0)[1], flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        try:
            exec(eval(line), dict(globals()))
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    print(pid, flush=True)
"""


class _Forker:
    """A Python process that imports ``setup`` once and forks a child for each run, so
    that every kill lands on the work and none on the imports (a second of each run); the
    forker itself runs no thread, so forking it is safe."""

    def __init__(self, setup: str, env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", setup + _FORK_LOOP], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, code: str) -> int:
        """Fork a child running ``code``; its pid."""
        self.proc.stdin.write(repr(code) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait(self) -> int:
        """The wait status of the last child (0: it ran to its end)."""
        self.proc.stdin.write("WAIT\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def run(self) -> float:
        """Seconds the last started child ran; it must end well."""
        t0 = time.perf_counter()
        assert self.wait() == 0
        return time.perf_counter() - t0

    def kill_after(self, code: str, delay: float) -> None:
        """Start ``code`` in a child and SIGKILL it after ``delay`` seconds."""
        pid = self.start(code)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        self.wait()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def test_streamed_maps_killed_at_random_moments(tmp_path):
    """SIGKILL while compute_maps(store=True) streams peak and element maps band by band
    into the store: afterwards both layers are the old pair or the new pair, complete,
    never one of each or partial bands; the next write leaves no debris."""
    import os

    from maxrf import maps as mp
    from maxrf.synth import make_scan

    truth = make_scan(tmp_path / "scan", height=60, width=48, seed=4,
                      elements=["Ca", "Fe", "Cu", "Pb"])
    ds = convert(tmp_path / "scan.rpl", tmp_path / "scan.datastack", calibrate=False,
                 budget=2**20)
    ds.write_layer("calibration", {"energies": truth.energies},
                   {"gain_keV": truth.gain_keV, "offset_keV": truth.offset_keV,
                    "method": "manual", "peaks": []})
    env = {**os.environ, "MAXRF_BUDGET_MB": "0.2"}  # many small bands
    old_kw = dict(peaks=True, elements=["Fe"], prominence=40.0, store=True)
    new_kw = dict(peaks=True, elements=["Fe", "Cu", "Pb"], prominence=25.0, store=True)
    new = mp.compute_maps(ds, **new_kw)
    expected_new = (np.asarray(new.peaks.maps), np.asarray(new.elements.maps))
    old = mp.compute_maps(ds, **old_kw)
    expected_old = (np.asarray(old.peaks.maps), np.asarray(old.elements.maps))
    forker = _Forker("from maxrf import DataStack\nfrom maxrf.maps import compute_maps\n", env)
    code = f"compute_maps(DataStack({str(ds.path)!r}), **{new_kw!r})\n"
    # the first run compiles what the imports left for later: the run's length is the
    # fastest of three
    full = min(forker.start(code) and forker.run() for _ in range(3))
    mp.compute_maps(ds, **old_kw)
    rng = _rng(20261202)
    seen = {"old": 0, "new": 0}
    for delay in rng.uniform(0.0, full, KILLS):
        forker.kill_after(code, delay)
        d = DataStack(ds.path)
        pl, el = d.read("peak_maps"), d.read("element_maps")
        state = "old" if pl.attrs["prominence"] == 40.0 else "new"
        # element maps accumulate by element: the old run's Fe beside the new run's Cu, Pb
        assert el.attrs["elements"] == ["Fe", "Cu", "Pb"]
        want = expected_old if state == "old" else expected_new
        np.testing.assert_array_equal(pl["maps"], want[0])
        np.testing.assert_allclose(el["maps"][: len(want[1])], want[1], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(el["maps"][1:], expected_new[1][1:], rtol=1e-6, atol=1e-4)
        seen[state] += 1
        if state == "new":
            mp.compute_maps(ds, **old_kw)
    forker.close()
    assert seen["old"] > KILLS // 2, seen  # the kills landed mid-write
    _record("streamed maps", KILLS, seen)
    mp.compute_maps(ds, **old_kw)  # debris of the killed writers is collected
    names = sorted(p.name.split(".")[0] for p in (ds.path / "layers").iterdir())
    assert names == ["calibration", "element_maps", "peak_maps"]
