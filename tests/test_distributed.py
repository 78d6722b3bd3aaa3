"""The engine on a real dask.distributed cluster gives the same store as local threads."""

from __future__ import annotations

import numpy as np

from maxrf import DataStack
from maxrf.convert import convert

from conftest import poisson_cube, write_pair


def test_convert_on_local_cluster_equals_local(tmp_path, client):
    cube = poisson_cube(11, shape=(40, 30, 128))
    rpl = write_pair(tmp_path, cube)
    local = convert(rpl, tmp_path / "local.datastack", calibrate=False, sigma=1.0, budget=2**17)
    dist = convert(rpl, tmp_path / "dist.datastack", calibrate=False, sigma=1.0, budget=2**17,
                   client=client)
    assert len(local.block_source().blocks()) > 4  # really spread over the workers
    np.testing.assert_array_equal(dist.cube.compute(), local.cube.compute())
    np.testing.assert_array_equal(dist.max_spectrum, local.max_spectrum)
    np.testing.assert_array_equal(dist.argmax_pixels, local.argmax_pixels)
    np.testing.assert_allclose(dist.sum_spectrum, local.sum_spectrum, rtol=1e-12)
    assert DataStack(tmp_path / "dist.datastack").shape == cube.shape


def test_worker_killed_mid_run_same_results(tmp_path, client):
    """Kill a worker process while convert runs: dask reschedules its blocks (each block
    write is idempotent: a chunk-aligned region) and the store equals the local one."""
    import os
    import signal
    import threading
    import time

    cube = poisson_cube(12, shape=(160, 120, 512))
    rpl = write_pair(tmp_path, cube)
    local = convert(rpl, tmp_path / "local.datastack", calibrate=False, budget=2**20)
    n_blocks = len(local.block_source().blocks())
    workers = list(client.scheduler_info()["workers"])
    pids = client.run(os.getpid)
    killed = {}

    def kill_one():
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:  # wait until a fifth of the blocks are written
            partial = [p for p in tmp_path.glob(".dist.datastack.partial-*/cube") if p.is_dir()]
            if partial and sum(1 for p in partial[0].iterdir() if p.name.startswith("c.")) >= n_blocks // 5:
                break
            time.sleep(0.01)
        killed["at"] = time.perf_counter()
        os.kill(pids[workers[0]], signal.SIGKILL)

    t = threading.Thread(target=kill_one)
    t.start()
    dist = convert(rpl, tmp_path / "dist.datastack", calibrate=False, budget=2**20, client=client)
    done = time.perf_counter()
    t.join()
    assert killed["at"] < done, "the worker was killed after the run ended: test is vacuous"
    np.testing.assert_array_equal(dist.cube.compute(), local.cube.compute())
    np.testing.assert_array_equal(dist.max_spectrum, local.max_spectrum)
    np.testing.assert_array_equal(dist.argmax_pixels, local.argmax_pixels)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for later tests
    deadline = time.perf_counter() + 30
    while workers[0] in client.scheduler_info()["workers"] and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert workers[0] not in client.scheduler_info()["workers"], "the worker did not die"


def _layers(ds):
    out = {}
    for name in ds.layers:
        layer = ds.read(name)
        out[name] = ({k: np.asarray(v) for k, v in layer.items()}, layer.attrs)
    return out


def test_whole_pipeline_on_cluster_equals_local(tmp_path, client):
    """convert + calibrate, hotmax, identify, maps, speckles, report with a Client: every
    layer equals the local run's (maps to float32 rounding of the fit's sums)."""
    from maxrf.pipeline import run_pipeline
    from maxrf.synth import make_scan

    truth = make_scan(tmp_path / "scan", height=40, width=48, seed=21,
                      elements=["Ca", "Fe", "Cu", "Pb"], n_speckles=6, speckle_element="Fe")
    local = convert(tmp_path / "scan.rpl", tmp_path / "local.datastack", budget=2**21)
    dist = convert(tmp_path / "scan.rpl", tmp_path / "dist.datastack", budget=2**21,
                   client=client)
    assert len(local.block_source().blocks()) > 4
    run_pipeline(local, report=tmp_path / "local.html")
    summary = run_pipeline(dist, report=tmp_path / "dist.html", client=client)
    assert set(summary["elements"]) >= set(truth.elements)
    a, b = _layers(local), _layers(dist)
    assert sorted(a) == sorted(b) and {"peak_maps", "element_maps", "speckles"} <= set(a)
    for name in a:
        arrays_a, attrs_a = a[name]
        arrays_b, attrs_b = b[name]
        for key in arrays_a:
            if name == "element_maps":
                np.testing.assert_allclose(arrays_b[key], arrays_a[key], rtol=1e-5, atol=1e-3)
            else:
                np.testing.assert_array_equal(arrays_b[key], arrays_a[key], err_msg=f"{name}/{key}")
        if name != "element_maps":  # refined_fraction may differ in the last float32 digit
            drop = {"source"}  # the datastack's own path
            assert ({k: v for k, v in attrs_b.items() if k not in drop}
                    == {k: v for k, v in attrs_a.items() if k not in drop}), name


def test_cli_scheduler_option_and_env(tmp_path, client, monkeypatch, capsys):
    """--scheduler ADDRESS on the commands that read the cube, and MAXRF_SCHEDULER."""
    from maxrf.cli import main

    address = client.scheduler.address
    rpl = write_pair(tmp_path, poisson_cube(13, shape=(30, 20, 64)))
    assert main(["convert", rpl, "--no-calibrate", "--quiet", "--scheduler", address]) == 0
    ds_path = str(tmp_path / "scan.datastack")
    assert main(["verify", ds_path, "--scheduler", address]) == 0
    assert "OK" in capsys.readouterr().out
    monkeypatch.setenv("MAXRF_SCHEDULER", address)
    from maxrf import engine, engine_dask

    before = engine.get_client()
    assert before is not None and before.scheduler.address == address
    assert engine.get_client() is before  # one client per address, reused
    engine_dask._CLIENTS.pop(address).close()


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    import dask

    from maxrf.cli import main

    rpl = write_pair(tmp_path, poisson_cube(14, shape=(6, 5, 16)))
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        rc = main(["convert", rpl, "--no-calibrate", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot reach the dask scheduler" in err and "127.0.0.1:9" in err
    assert not list(tmp_path.glob("*.datastack")) and not list(tmp_path.glob(".*partial*"))


def test_verify_on_cluster_finds_the_same_damage(tmp_path, client):
    from maxrf.verify import verify

    ds = convert(write_pair(tmp_path, poisson_cube(15, shape=(40, 30, 128))), calibrate=False,
                 budget=2**17)
    chunks = sorted(p for p in (ds.path / "cube").rglob("*") if p.is_file() and p.name != "zarr.json")
    raw = bytearray(chunks[3].read_bytes())
    raw[len(raw) // 2] ^= 0x40
    chunks[3].write_bytes(bytes(raw))
    chunks[5].unlink()
    local, dist = verify(ds.path), verify(ds.path, client=client)
    assert not local.ok and len(local.problems) == 2
    assert sorted(dist.problems) == sorted(local.problems)
    assert dist.chunks_checked == local.chunks_checked > 8


def test_failed_run_on_cluster_returns_after_running_blocks_end(tmp_path, client):
    """A block that fails on a worker while another worker is mid-write: the error
    reaches the caller only once that write is over, so removing the partial output is
    final (dask does not stop a cancelled task that is already running)."""
    import shutil
    import time

    import pytest

    from maxrf import engine

    from conftest import ArraySource

    class SlowFileSink:
        def __init__(self, folder):
            self.folder = str(folder)

        def write_block(self, block, data):
            import os
            import time

            if block.index == 0:
                raise OSError(28, "No space left on device")
            time.sleep(0.6)
            os.makedirs(self.folder, exist_ok=True)
            open(os.path.join(self.folder, f"block{block.index}"), "w").close()

    out = tmp_path / "partial"
    cube = poisson_cube(6, shape=(8, 8, 4))
    with pytest.raises(OSError, match="No space"):
        engine.run(ArraySource(cube, 4, 4), {"mean": engine.MeanSpectrum()},
                   sink=SlowFileSink(out), client=client)
    shutil.rmtree(out, ignore_errors=True)  # the caller's clean-up
    time.sleep(1.5)
    assert not out.exists()
