"""Convert against a numpy pass, measured as interleaved pairs in one process (issue 17).

The machine is shared: one timing of each says little, so each pair times the numpy pass
and convert back to back (alternating which goes first), and the result is the median of
the pairs' ratios, with every pair and the load average kept. For the cold pairs the raw
file is evicted from the page cache before each run and the eviction is checked
(``mincore``: the fraction of its pages still cached is recorded). What no eviction in
this virtual machine reaches is the host's side of the virtual disk: the same cold GiB
read in 0.6-5 s within an hour. Before every cold run everything is written out
(``sync``) and the file is read once sequentially and evicted again (:func:`_prime`), and
the cold runs write their stores to new folders deleted after the last pair (ext4 here
is mounted with ``discard``): the same starting point for every run as far as the guest
can set it. It does not make the runs alike: under load 5-6 a cold numpy pass right
after a convert took 3-5 s, one right after a numpy pass 1.1-1.3 s (the host still
writing the convert's store is a guess), hence alternating pairs and the median; the
times measure reading the file through the guest's page cache, not the physical disk.

:func:`stages_two_threads` times the stages of a real convert on both engine threads by
wrapping the functions each stage calls (restored afterwards).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import drop_cache, numpy_pass


def _numpy(scan: Any) -> Callable[[], None]:
    return lambda: numpy_pass(scan.raw_path, scan.shape, scan.header.dtype)


def _convert(rpl: Path, out: Path, keep: bool = False, **kwargs: Any) -> Callable[[], None]:
    """A convert to ``out`` (removed first), or with ``keep`` to a new folder next to it
    each call (``OUT.N.datastack``, removed by :func:`_remove_kept`)."""
    from maxrf.convert import convert

    calls = iter(range(10**6))

    def run() -> None:
        target = out.with_name(f"{out.stem}.{next(calls)}.datastack") if keep else out
        shutil.rmtree(target, ignore_errors=True)
        convert(rpl, target, calibrate=False, overwrite=True, **kwargs)

    return run


def _remove_kept(out: Path) -> None:
    for folder in out.parent.glob(f"{out.stem}.*.datastack"):
        shutil.rmtree(folder, ignore_errors=True)


def _prime(path: Path) -> float | None:
    """The same starting point for every cold run (see the module's docstring): pending
    writes out, one sequential read of the file, then the file evicted; returns the
    fraction of it still cached (0 when the eviction worked)."""
    os.sync()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass
    return drop_cache(path)


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def pairs(scan: Any, rpl: Path, out: Path, n: int = 5, cold: bool = False,
          **convert_kwargs: Any) -> dict:
    """``n`` numpy/convert pairs, alternating order; page-cached (warm: the file is read
    once first) or ``cold`` (the file evicted and checked before every run).

    Returns the median and every pair's wall ratio, the medians of the wall and CPU
    seconds, the fraction of the file left in the page cache before each cold run and
    the load average before and after.
    """
    numpy_run, convert_run = _numpy(scan), _convert(rpl, out, keep=cold, **convert_kwargs)
    load = [os.getloadavg()]
    if not cold:
        numpy_run()  # the file into the page cache
    runs: list[dict[str, Any]] = []
    for i in range(n):
        pair: dict[str, Any] = {}
        for name, fn in ((("numpy", numpy_run), ("convert", convert_run)) if i % 2 == 0
                         else (("convert", convert_run), ("numpy", numpy_run))):
            if cold:
                pair[f"{name}_cached_before"] = _prime(scan.raw_path)
            pair[name], pair[f"{name}_cpu"] = _timed(fn)
        pair["ratio"] = pair["convert"] / pair["numpy"]
        runs.append(pair)
    shutil.rmtree(out, ignore_errors=True)
    _remove_kept(out)
    load.append(os.getloadavg())
    med = {k: statistics.median(p[k] for p in runs) for k in ("numpy", "convert", "numpy_cpu",
                                                              "convert_cpu", "ratio")}
    return {"ratio_median": med["ratio"], "ratios": [p["ratio"] for p in runs],
            "seconds_median": {"numpy": med["numpy"], "convert": med["convert"]},
            "cpu_seconds_median": {"numpy": med["numpy_cpu"], "convert": med["convert_cpu"]},
            "cpu_ratio_median": statistics.median(p["convert_cpu"] / p["numpy_cpu"] for p in runs),
            "pairs": runs, "load_average": {"before": load[0], "after": load[1]}}


@contextlib.contextmanager
def _wrapped(targets: list[tuple[Any, str, str]], acc: dict) -> Iterator[None]:
    """Wrap ``getattr(owner, attr)`` so each call adds its wall and thread CPU seconds to
    ``acc[stage]``; restored on exit."""
    lock = threading.Lock()
    saved = []

    def wrap(stage: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    s = acc[stage]
                    s[0] += time.perf_counter() - t0
                    s[1] += time.thread_time() - c0
                    s[2] += 1
        return timed

    try:
        for owner, attr, stage in targets:
            saved.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, wrap(stage, getattr(owner, attr)))
        yield
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)


class _TimedCodec:
    """A codec whose ``encode`` adds its wall and thread CPU seconds to ``acc["encode"]``."""

    def __init__(self, codec: Any, acc: dict):
        self.codec, self.acc = codec, acc

    def encode(self, data: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = self.codec.encode(data)
        s = self.acc["encode"]  # list += is atomic enough under the GIL for a benchmark
        s[0] += time.perf_counter() - t0
        s[1] += time.thread_time() - c0
        s[2] += 1
        return out


def stages_two_threads(rpl: Path, out: Path, n: int = 3) -> dict:
    """Wall and thread-CPU seconds of each stage of a real (page-cached) convert, summed
    over the engine's two threads, median of ``n`` runs: the block read (a view of the
    file's pages: the page faults land in the first stage that touches the data, the
    encode), the summary spectra, the blosc encode, the crc32c, the chunk file write (the
    sink's total minus encode and crc32c), creating and finishing the store (zarr
    metadata, manifest with fsync), the calibration layer and the rename into place."""
    import crc32c

    import maxrf.convert as mc
    import maxrf.store.cube as cube
    import maxrf.summary as summary

    plan_of = cube.ChunkWriter._make_plan
    runs = []
    for _ in range(n):
        acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])

        def plan(self: Any, acc: dict = acc) -> tuple:
            p = list(plan_of(self))
            if p[2] is not None:  # the blosc codec
                p[2] = _TimedCodec(p[2], acc)
            return tuple(p)

        targets = [(mc.ScanSource, "read_block", "read_block"),
                   (summary.SummarySpectra, "block", "summary"),
                   (cube.ChunkWriter, "write_block", "sink_total"),
                   (crc32c, "crc32c", "crc32c"),
                   (mc, "create_cube", "create_cube"), (mc, "finish_store", "finish_store"),
                   (mc, "_store_calibration", "calibration_layer"),
                   (mc, "_swap_into_place", "rename_into_place")]
        shutil.rmtree(out, ignore_errors=True)
        cube.ChunkWriter._make_plan = plan
        try:
            with _wrapped(targets, acc):
                wall, cpu = _timed(_convert(rpl, out))
        finally:
            cube.ChunkWriter._make_plan = plan_of
        stages = {k: {"wall": v[0], "cpu": v[1], "calls": v[2]} for k, v in acc.items()}
        sink = stages.pop("sink_total", {"wall": 0.0, "cpu": 0.0})
        for key in ("wall", "cpu"):
            inner = sum(stages.get(s, {}).get(key, 0.0) for s in ("encode", "crc32c"))
            stages.setdefault("chunk_file_write", {"calls": 0})[key] = sink[key] - inner
        runs.append({"convert_wall": wall, "convert_cpu": cpu, "stages": stages})
    shutil.rmtree(out, ignore_errors=True)
    names = sorted({k for r in runs for k in r["stages"]})
    return {"convert_wall_median": statistics.median(r["convert_wall"] for r in runs),
            "convert_cpu_median": statistics.median(r["convert_cpu"] for r in runs),
            "stages_median": {k: {m: statistics.median(r["stages"].get(k, {}).get(m, 0.0) for r in runs)
                                  for m in ("wall", "cpu")} for k in names},
            "note": "wall and thread CPU summed over both engine threads (so wall can exceed the "
                    "run's); the main thread's share is convert_cpu minus the stages' CPU",
            "load_average": os.getloadavg()}
