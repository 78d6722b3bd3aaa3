"""maxrf.pixels, the one home of reading chosen pixels: every kind of cube against plain numpy
indexing of the same cube."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage.measure import label, regionprops

from maxrf.convert import convert
from maxrf.engine import Block
from maxrf.errors import ParameterError
from maxrf.pixels import mask_pixels, read_spectra, region_spectra

from conftest import poisson_cube, write_pair


class LocalSource:
    """A block source over a numpy cube that records the blocks it is asked for."""

    def __init__(self, cube: np.ndarray, chunks: tuple[int, int]):
        self.cube = cube
        self.shape = cube.shape
        self.chunks = (*chunks, cube.shape[2])
        self.reads: list[tuple[int, int]] = []

    def read_block(self, block: Block) -> np.ndarray:
        self.reads.append((block.rows.start, block.cols.start))
        return self.cube[block.rows, block.cols].copy()


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    return poisson_cube(3, shape=(23, 29, 40), lam=4.0)


def _kinds(cube: np.ndarray) -> dict[str, object]:
    return {
        "numpy": cube,
        "dask irregular": da.from_array(cube, chunks=((5, 9, 9), (7, 7, 15), 40)),
        "local source": LocalSource(cube, (6, 8)),
    }


def test_read_spectra_equals_numpy_indexing(cube):
    rng = np.random.default_rng(0)
    rows = rng.integers(0, cube.shape[0], 37)
    cols = rng.integers(0, cube.shape[1], 37)  # repeats and any order
    for name, c in _kinds(cube).items():
        got = read_spectra(c, rows, cols)
        assert got.dtype == cube.dtype, name
        np.testing.assert_array_equal(got, cube[rows, cols], err_msg=name)
        mean = read_spectra(c, rows, cols, average=True)
        np.testing.assert_allclose(mean, cube[rows, cols].mean(axis=0), rtol=1e-12, err_msg=name)


def test_a_local_source_reads_each_chunk_once(cube):
    src = LocalSource(cube, (6, 8))
    rows = np.array([0, 1, 5, 6, 22, 0])
    cols = np.array([0, 7, 7, 8, 28, 1])
    read_spectra(src, rows, cols)
    want = {(0, 0), (6, 8), (18, 24)}  # the chunks holding those pixels
    assert sorted(src.reads) == sorted(want)


def test_region_spectra_bounding_box_and_region_equal_numpy(cube):
    mask = np.zeros(cube.shape[:2], bool)
    mask[4:9, 10:14] = True
    mask[6, 14:17] = True
    (p,) = regionprops(label(mask, connectivity=1))
    want = cube[mask]
    for name, c in _kinds(cube).items():
        np.testing.assert_array_equal(region_spectra(c, mask, average=False), want, err_msg=name)
        np.testing.assert_allclose(region_spectra(c, p.image, offset=p.bbox[:2]), want.mean(axis=0),
                                   rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(region_spectra(c, p), want.mean(axis=0), rtol=1e-12, err_msg=name)


def test_a_datastack_is_read_from_its_stored_cube(tmp_path, cube, monkeypatch):
    monkeypatch.setenv("MAXRF_BUDGET_MB", "0.1")  # several chunks
    ds = convert(write_pair(tmp_path, cube), tmp_path / "s.datastack", calibrate=False)
    assert ds.chunks[0] < cube.shape[0]
    rows, cols = np.array([0, 22, 11, 3]), np.array([28, 0, 14, 3])
    np.testing.assert_array_equal(read_spectra(ds, rows, cols), cube[rows, cols])
    mask = np.zeros(cube.shape[:2], bool)
    mask[::3, 1::4] = True
    np.testing.assert_allclose(region_spectra(ds, mask), cube[mask].mean(axis=0), rtol=1e-12)


def test_mask_pixels_and_errors(cube):
    rows, cols = mask_pixels(np.eye(3, dtype=bool), (10, 10), offset=(2, 5))
    assert rows.tolist() == [2, 3, 4] and cols.tolist() == [5, 6, 7]
    with pytest.raises(ParameterError, match="outside"):
        mask_pixels(np.ones((3, 3)), (10, 10), offset=(8, 0))
    with pytest.raises(ParameterError, match="offset"):
        mask_pixels(np.ones((3, 3)), (10, 10))
    with pytest.raises(ParameterError, match="no pixels"):
        mask_pixels(np.zeros((10, 10)), (10, 10))
    with pytest.raises(ParameterError, match="outside the scan"):
        read_spectra(cube, [0, cube.shape[0]], [0, 0])
    assert read_spectra(da.from_array(cube), [], []).shape == (0, cube.shape[2])
