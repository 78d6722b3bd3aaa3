"""Shared benchmark helpers: timing, peak RSS of a child process, saving results."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = Path(os.environ.get("MAXRF_BENCH_DIR", ROOT / "work"))


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def drop_cache(path: Path, tries: int = 3) -> float | None:
    """Ask the kernel to forget a file's pages (fair cold comparisons); returns the
    fraction of its pages still in the page cache afterwards (:func:`cached_fraction`,
    ``None`` where it cannot be measured). Dirty pages are written first (``fsync``:
    DONTNEED skips dirty pages), and the call is repeated while pages remain (pages under
    read-ahead or mapped elsewhere are skipped by one call). Only this file: the whole
    machine's cache (``/proc/sys/vm/drop_caches``) is other processes' too."""
    left = None
    for _ in range(tries):
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            return None
        left = cached_fraction(path)
        if not left:
            break
    return left


def cached_fraction(path: Path) -> float | None:
    """Fraction of a file's pages in the page cache (``mincore`` on a private mapping,
    which reads nothing), or ``None`` where mincore is unavailable."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    except (OSError, AttributeError):
        return None
    try:
        page = mmap.PAGESIZE
        vec = (ctypes.c_ubyte * (-(-size // page)))()
        buf = ctypes.c_char.from_buffer(mm)
        try:
            rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(buf)), ctypes.c_size_t(size), vec)
        finally:
            del buf
        if rc != 0:
            return None
        return float((np.frombuffer(vec, dtype=np.uint8) & 1).mean())
    finally:
        mm.close()


def child_peak_rss(code: str, env: dict | None = None) -> tuple[float, int]:
    """Run ``code`` in a fresh interpreter; return (seconds, peak RSS in bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **(env or {})},
                          capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ru_maxrss of children is the max over all waited children: report from the child itself
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK_RSS "):
            return dt, int(line.split()[1])
    return dt, usage.ru_maxrss * 1024


def child_usage(code: str, env: dict | None = None, python: str | os.PathLike | None = None,
                stdin: str | None = None, timeout: float | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (``python``, default this one): wall seconds,
    CPU seconds (user + system, from the wait's resource usage, so under load the CPU
    time still means something) and peak RSS (bytes; from the child's ``PEAK_RSS`` line,
    see :data:`PEAK_RSS_SNIPPET`, else the children's ``ru_maxrss``). Raises
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child is killed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([str(python or sys.executable), "-c", code],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          input=stdin, timeout=timeout)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    rss = after.ru_maxrss * 1024
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK_RSS "):
            rss = int(line.split()[1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": dt, "cpu_seconds": cpu, "peak_rss": rss, "stdout": proc.stdout}


#: the peak RSS line for :func:`child_usage` without importing this package (for an
#: interpreter of another virtualenv)
VM_HWM_SNIPPET = (
    "\nprint('PEAK_RSS', [int(l.split()[1]) * 1024 for l in open('/proc/self/status')"
    " if l.startswith('VmHWM:')][0])\n"
)


PEAK_RSS_SNIPPET = (
    "\nfrom benchmarks.common import vm_hwm\nprint('PEAK_RSS', vm_hwm())\n"
)


def vm_hwm() -> int:
    """Peak resident set size of this process, bytes (VmHWM).

    Not ``ru_maxrss``: Linux carries that across fork+exec, so a child started from a big
    parent reports the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def numpy_pass(raw: Path, shape: tuple[int, int, int], dtype, rows: int = 16) -> float:
    """Baseline: one blockwise numpy pass (max and sum) over the memory-mapped raw file."""
    h, w, c = shape
    t0 = time.perf_counter()
    mm = np.memmap(raw, dtype=dtype, mode="r", shape=shape)
    mx = np.zeros(c, dtype=dtype)
    sm = np.zeros(c, dtype=np.float64)
    for r0 in range(0, h, rows):
        block = np.asarray(mm[r0:r0 + rows]).reshape(-1, c)
        np.maximum(mx, block.max(0), out=mx)
        sm += block.sum(0, dtype=np.float64)
    del mm
    return time.perf_counter() - t0


def save(name: str, result: dict) -> Path:
    """Save a result as benchmarks/results/NAME.json with machine notes."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    return path
