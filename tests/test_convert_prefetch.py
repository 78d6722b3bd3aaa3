"""Convert's read-ahead of a cold raw file: which rows the source asks the reader for."""

from __future__ import annotations

import numpy as np

from maxrf.convert import ScanSource


class RecordingScan:
    """A scan of zeros that records the rows it is asked to prefetch."""

    dtype = np.dtype(np.uint16)

    def __init__(self, shape):
        self.shape = shape
        self.asked: list[range] = []

    def prefetch(self, rows: slice) -> None:
        self.asked.append(range(*rows.indices(self.shape[0])))

    def read_block(self, rows, cols):
        return np.zeros((len(range(*rows.indices(self.shape[0]))),
                         len(range(*cols.indices(self.shape[1]))), self.shape[2]), self.dtype)


def test_each_row_after_the_first_block_is_asked_for_once_per_pass(monkeypatch):
    shape = (40, 6, 32)  # one row is 6 * 32 * 2 = 384 bytes
    monkeypatch.setattr(ScanSource, "PREFETCH_BYTES", 5 * 384)  # five rows ahead
    monkeypatch.setattr(ScanSource, "PREFETCH_THREAD", False)  # the calls in order, here
    for flip_v in (False, True):
        scan = RecordingScan(shape)
        src = ScanSource(scan, (3, 6), False, flip_v)
        for _ in range(2):  # a second pass over the same source asks again
            for b in src.blocks():
                src.read_block(b)
            rows = sorted(r for asked in scan.asked for r in asked)
            file_rows = range(37) if flip_v else range(3, 40)  # all but the first block's rows
            assert rows == sorted(file_rows)
            scan.asked.clear()
