"""The CLI against a dask cluster in other processes, started the usual way.

``dask scheduler`` and ``dask worker ADDRESS --nworkers 2`` run as subprocesses; the
commands run as ``python -m maxrf ... --scheduler ADDRESS`` (and ``MAXRF_SCHEDULER``)
in fresh processes, so no default client exists anywhere but on the cluster itself:
the engine must use the client it made, not look for a default one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from maxrf import DataStack

from conftest import poisson_cube, write_pair

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MAXRF_SCHEDULER", None)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


#: the workers' statistical profiler samples every thread 100 times a second for the
#: dashboard nobody looks at here: about 40 % of an idle cluster's CPU time
_QUIET = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and a worker process with two worker sub-processes on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("cluster")
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"],
            env=_env(**_QUIET), stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w")))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
             "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0"],
            env=_env(**_QUIET), stdout=subprocess.DEVNULL, stderr=open(logs / "worker.log", "w")))
        from distributed import Client

        deadline = time.monotonic() + 60
        client = None
        while client is None:
            try:
                client = Client(address, set_as_default=False, timeout="2s")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        client.wait_for_workers(2, timeout=60)
        yield address, client
        client.close()
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _maxrf(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "maxrf", *args], env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def test_cli_commands_on_subprocess_cluster_equal_local(tmp_path, cluster):
    address, _client = cluster
    from maxrf.synth import make_scan

    make_scan(tmp_path / "scan", height=24, width=32, channels=1024, seed=5,
              elements=["Ca", "Fe", "Cu", "Pb"], n_speckles=3)
    rpl = str(tmp_path / "scan.rpl")
    local = tmp_path / "local.datastack"
    dist = tmp_path / "dist.datastack"
    env = _env(MAXRF_BUDGET_MB="1")  # many blocks: really spread over the workers
    from maxrf.cli import main

    assert main(["convert", rpl, "-o", str(local), "--quiet"]) == 0  # local threads, in process
    r = _maxrf("convert", rpl, "-o", str(dist), "--quiet", "--scheduler", address, env=env)
    assert r.returncode == 0, r.stderr
    a, b = DataStack(local), DataStack(dist)
    np.testing.assert_array_equal(b.cube.compute(), a.cube.compute())
    np.testing.assert_array_equal(b.max_spectrum, a.max_spectrum)
    r = _maxrf("verify", str(dist), env=_env(MAXRF_SCHEDULER=address))  # the environment variable
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    for args in (("hotmax", "--json"), ("maps", "--peaks", "--quiet")):
        r = _maxrf(args[0], str(dist), *args[1:], "--scheduler", address)
        assert r.returncode == 0, r.stderr
        assert main([args[0], str(local), *args[1:]]) == 0
    a, b = DataStack(local), DataStack(dist)
    for layer in ("hotmax", "peak_maps"):
        la, lb = a.read(layer), b.read(layer)
        for key in la:
            np.testing.assert_array_equal(np.asarray(lb[key]), np.asarray(la[key]), err_msg=layer)


def test_demo_pipeline_on_subprocess_cluster(tmp_path, cluster):
    """The whole demo workflow on the cluster (convert, hotmax and maps compared with the
    local run above): it finishes, and finds the drawing's elements."""
    address, _client = cluster
    from maxrf.demo import DEMO_SCAN
    from maxrf.maps import identified_elements

    # the drawing's three main elements and no Cu/Zn particle: half the hotmax spectra, and
    # identifying and plotting those (not the cluster) were most of this test's CPU time
    small = dict(DEMO_SCAN, height=24, width=32, channels=1024, n_speckles=2,
                 elements=["Ca", "Fe", "Pb"], particle=False)
    code = (
        "import sys, maxrf.demo as d; d.DEMO_SCAN.update(" + repr(small) + ");"
        "from maxrf.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    r = subprocess.run([sys.executable, "-c", code, "demo", str(tmp_path / "dist"), "--scheduler",
                        address], env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    ds = DataStack(tmp_path / "dist" / "demo-scan.datastack")
    assert {"Fe", "Pb", "Ca"} <= set(identified_elements(ds))
    assert {"peak_maps", "element_maps", "hotmax"} <= set(ds.layers)
    assert (tmp_path / "dist" / "report.html").stat().st_size > 1000


def test_worker_killed_mid_convert_on_subprocess_cluster(tmp_path, cluster):
    address, client = cluster
    rpl = write_pair(tmp_path, poisson_cube(32, shape=(160, 120, 512)))
    env = _env(MAXRF_BUDGET_MB="1")
    from maxrf.convert import convert

    convert(rpl, tmp_path / "local.datastack", calibrate=False)
    client.wait_for_workers(2, timeout=60)
    pids = list(client.run(os.getpid).values())
    proc = subprocess.Popen([sys.executable, "-m", "maxrf", "convert", rpl, "-o",
                             str(tmp_path / "dist.datastack"), "--no-calibrate", "--quiet",
                             "--scheduler", address], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed = {}

    def kill_one():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in tmp_path.glob(".dist.datastack.partial-*/cube") if p.is_dir()]
            if partial and sum(1 for _ in partial[0].iterdir() if _.name.startswith("c.")) >= 8:
                os.kill(pids[0], signal.SIGKILL)
                killed["yes"] = True
                return
            time.sleep(0.005)

    t = threading.Thread(target=kill_one)
    t.start()
    out, err = proc.communicate(timeout=180)
    t.join()
    assert killed, "the worker was not killed during the run: test is vacuous"
    assert proc.returncode == 0, err
    a, b = DataStack(tmp_path / "local.datastack"), DataStack(tmp_path / "dist.datastack")
    np.testing.assert_array_equal(b.cube.compute(), a.cube.compute())
    np.testing.assert_array_equal(b.max_spectrum, a.max_spectrum)


def test_decompose_and_cluster_on_subprocess_cluster_equal_local(tmp_path, cluster):
    """The other commands taking --scheduler: decompose (and cluster, its classes) on the
    subprocess cluster store what the local run stores."""
    address, _client = cluster
    from maxrf.cli import main
    from maxrf.synth import make_scan

    make_scan(tmp_path / "scan", height=24, width=32, channels=1024, seed=6,
              elements=["Ca", "Fe", "Cu", "Pb"], n_speckles=2)
    paths = {}
    for name in ("local", "dist"):
        paths[name] = tmp_path / f"{name}.datastack"
        assert main(["convert", str(tmp_path / "scan.rpl"), "-o", str(paths[name]), "--quiet"]) == 0
    assert main(["decompose", str(paths["local"]), "--components", "3", "--quiet", "--json"]) == 0
    r = _maxrf("decompose", str(paths["dist"]), "--components", "3", "--quiet", "--json",
               "--scheduler", address, env=_env(MAXRF_BUDGET_MB="1"))
    assert r.returncode == 0, r.stderr
    r = _maxrf("cluster", str(paths["dist"]), "--components", "3", "--quiet",
               env=_env(MAXRF_BUDGET_MB="1", MAXRF_SCHEDULER=address))
    assert r.returncode == 0, r.stderr
    a, b = DataStack(paths["local"]), DataStack(paths["dist"])
    for layer in ("decomposition", "clusters"):
        la, lb = a.read(layer), b.read(layer)
        assert sorted(la) == sorted(lb)
        for key in la:
            np.testing.assert_allclose(np.asarray(lb[key], dtype=float),
                                       np.asarray(la[key], dtype=float), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{layer}/{key}")
