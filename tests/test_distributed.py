"""The engine on a real dask.distributed cluster gives the same store as local threads."""

from __future__ import annotations

import numpy as np
import pytest

from maxrf import DataStack
from maxrf.convert import convert

from conftest import poisson_cube, write_pair


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


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
