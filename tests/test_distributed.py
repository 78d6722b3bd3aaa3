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
            partial = [p for p in tmp_path.glob(".dist.datastack.partial-*/cube/c") if p.is_dir()]
            if partial and sum(1 for _ in partial[0].rglob("0")) >= n_blocks // 5:
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
