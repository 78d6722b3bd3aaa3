"""Convert throughput and memory vs a numpy pass over the same raw file (issue: foundation).

Measures, in one run on one synthetic cube of >= 1 GB:
- numpy: one blockwise pass (max + sum) over the memory-mapped raw file (baseline);
- seed-style: the maxrf4u ancestor's three reads (convert to zarr, then max, then sum);
- maxrf convert, sigma=0, with max+sum+argmax fed from the same pass (the default: no
  smoothed max spectrum, see DECISIONS["smoothed_max_on_demand"]);
- maxrf convert writing the cube with no reductions (to price the reductions);
- maxrf convert with --compression none, and from a cold page cache;
- maxrf convert with the seed's smoothed max spectrum in the same pass (``--seed-max``),
  and that spectrum computed afterwards by the first ``ds.max_spectrum()`` call (one pass
  over the stored cube);
- encode/decode speed and ratio of blosc codecs and levels on real blocks;
- CPU seconds of each stage of the pass on one thread (read, reductions, codec, write);
- peak RSS of convert in a child process with a budget 1/8 or less of the cube.
Ratios are what count on this shared machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np

from benchmarks.common import (
    PEAK_RSS_SNIPPET,
    WORK,
    child_peak_rss,
    save,
    timed,
)


def make_cube(path, height, width, channels, seed=0):
    from maxrf.synth import make_scan

    return make_scan(path, height=height, width=width, channels=channels, seed=seed)


def seed_style(rpl, out):
    """The seed's ancestor: dask from the raw file -> zarr, then a max pass, then a sum pass."""
    import dask.array as da

    from maxrf.io.ripple import open_scan

    scan = open_scan(rpl)
    mm = np.memmap(scan.raw_path, dtype=scan.header.dtype, mode="r", offset=scan.header.offset,
                   shape=scan.shape)
    arr = da.from_array(mm, chunks=(64, 64, -1))
    arr.to_zarr(str(out), overwrite=True)
    z = da.from_zarr(str(out))
    z.max(axis=(0, 1)).compute()
    z.sum(axis=(0, 1)).compute()


def _stored_ratio(out, nbytes) -> float:
    """Uncompressed cube bytes / bytes of the stored cube's chunk files."""
    stored = sum(p.stat().st_size for p in (out / "cube").rglob("*") if p.is_file())
    return nbytes / stored


CODECS = {**{f"lz4-{level}": ("lz4", level) for level in (1, 2, 3, 4, 5, 9)}, "zstd-1": ("zstd", 1),
          "zstd-3": ("zstd", 3), "none": None}
"""Blosc codec and level (all bit-shuffled) compared in :func:`codec_table`; the store's
``--compression`` choices are keys of :data:`maxrf.store.COMPRESSIONS`."""


DECISIONS = {
    "summary_spectra": "max, argmax, mean and the smoothed max in one numba walk per block "
                       "(maxrf.summary, maxrf.kernels): each pixel's spectrum read once; the numpy "
                       "reductions cost 0.35 + 0.18 + 2.7 CPU s/GiB on the quiet machine, the walk "
                       "~0.2 without and ~1.0-1.3 with the smoothed max (stages_one_thread)",
    "smoothed_max_floor": "the blocks of a pass share the maximum found so far as the pruning "
                          "floor: 4.4-5.9 % of (pixel, bin) pairs smoothed exactly instead of ~9-13 %",
    "rejected_dense_bins_by_blas": "smoothing the bins where most pixels are candidates (the low "
                                   "channels' far tails, busy peaks) by float32 matrix products: "
                                   "0.34 CPU s/GiB for 26 bins, the whole reduction 1.59 vs 1.35 s/GiB",
    "rejected_vectorised_runs": "exact sums over runs of candidate bins as one vector loop: runs are "
                                "short, 2.25 vs 1.13 s/GiB",
    "rejected_two_accumulators": "even/odd tap accumulators in the exact sums: 1.35 vs 0.93 s/GiB",
    "rejected_float32_dots": "exact sums as four float32 dot products: 1.09-1.22 vs 1.05-1.17 s/GiB",
    "rejected_chunked_candidate_test": "a branch-free count of candidates per 16 bins before the "
                                       "per-bin test: 2.07-2.34 vs 1.06-1.23 s/GiB",
    "rejected_region_skip": "ruling out regions of 16 bins by their largest bin sum before the "
                            "bins' bounds: 4.3-6.1 vs 1.0-1.4 s/GiB (the fused walk, same process)",
    "where_the_smoothed_max_time_goes": "in the walk: bounds ~0.35-0.45 CPU s/GiB (bin sums, 17-tap "
                                        "banded sums over 512 bins per pixel), exact sums ~0.15-0.2, "
                                        "the rest the per-pixel float row and the per-bin test; 90 % of "
                                        "the exact pairs sit in 50 of 512 bins (low channels whose "
                                        "maximum is a far tail, where the bin bound is 5x loose, and the "
                                        "busiest peaks)",
    "smoothed_max_on_demand": "issue 17 (convert at the speed of the disk): convert no longer "
                              "computes the seed's smoothed max spectrum by default. Only the "
                              "maxrf4u-compatible call ds.max_spectrum() (and get_peakmaps(ds), "
                              "which calls it) uses it; maxrf's own workflow (hotmax, identify, the "
                              "maps CLI) uses the raw max spectrum; yet it cost ~0.9 of convert's "
                              "~2.3 CPU s/GiB (cpu_seconds: maxrf_convert_seed_max vs "
                              "maxrf_convert). The first ds.max_spectrum() call computes it in one "
                              "pass over the stored cube (cpu_seconds.seed_max_first_call: decode "
                              "plus the same pruned smoothing) and stores it, so it is paid once per "
                              "store and only by whoever uses the seed's call; --seed-max computes "
                              "it during convert for them. This reverses the earlier rejection "
                              "(a second pass for the seed workflow): every convert paid for a "
                              "spectrum most never read",
    "codec": "kept blosc lz4 level 5 + bitshuffle (ratio 7.7): on 8 real 4-row blocks (load 6.8, "
             "one thread) lz4 levels 1-5 bit-shuffled encode at 1145-1369 MB/s (ratio 7.31-7.71), "
             "byte-shuffled at 1023-1149 MB/s (ratio 3.97-4.52: half the compression and no faster), "
             "zstd-1 at 556 MB/s bit / 487 byte (ratio 10.3 / 8.2), blosclz 1/5 at 813-880 (7.1-7.2), "
             "lz4 blocksizes 64 KiB-1 MiB 1315-1424 MB/s (7.5-7.8): no variant encodes clearly faster "
             "(all within the +-10 % noise) and level 5 compresses best of lz4; decoding is as slow as "
             "encoding, so the bit shuffle is most of the cost (codecs); encoding stays ~0.8 CPU s/GiB",
    "blosc_threads": "numcodecs' Blosc uses one internal thread when called off the main thread (the "
                     "engine's workers), so blosc and engine threads do not oversubscribe the cores",
    "cold_prefetch": "each block read asks for the next 32 MiB of rows not asked for yet "
                     "(posix_fadvise WILLNEED) in 1 MiB pieces from a short-lived thread: Linux caps "
                     "one call at the device read-ahead (8 MiB here: fincore showed a 32 MiB call "
                     "bringing in 8 MiB) and the calls block while the reads are queued (0.7 s per cold "
                     "GiB summed over the engine threads); time the engine threads wait in reads on a "
                     "cold GiB 0.60-1.10 s vs 1.10-1.74 s with one 32 MiB call per block (3 runs each, "
                     "load 3-5; the cold wall time varied 3.7-7.1 s with the load, too noisy to rank)",
    "rejected_line_bound": "a tighter bound per bin pair: a line a + b k over the source bin's 4 "
                           "channels above their largest weights (bin sum and first moment sum k x_k "
                           "per bin): exact (pixel, bin) pairs 7.2 -> 4.4 % and 6.7 -> 3.8 % (64 rows "
                           "of the cube, two places) but the bounds alone cost 0.62-0.77 vs 0.46-0.55 "
                           "CPU s/GiB, the whole smoothed max 1.12-1.23 vs 1.01-1.23 (same process, "
                           "alternated): no gain; with 8-channel bins 1.33-1.36 vs 1.28; as a second "
                           "test only for the bins the present bound passes (moments per pixel on its first "
                           "candidate): pairs 7.5 -> 4.2 % but 1.82-2.08 vs 1.11-1.30 CPU s/GiB",
    "rejected_block_bound": "a bound per block from the per-bin maxima over its pixels, to skip the "
                            "per-pixel bounds of bins no pixel of the block can raise: 97 % of bins "
                            "stay active per 1- or 4-row block (maxima of different pixels add up)",
    "rejected_split_taps": "two accumulator sets over the two halves of the taps in the exact sums: "
                           "1.68-1.82 vs 1.03-1.28 CPU s/GiB; the exact sums already use AVX-512 "
                           "(inspect_asm of an uncached copy), as does the banded bound sum",
    "rejected_integer_bin_sums": "bin sums in integers and row slices of the band: 1.15-1.24 vs "
                                 "1.24-1.26 CPU s/GiB, within the noise",
    "numba_first_call": "kernel_first_call: compile once per machine (cache=True), later processes "
                        "load the cache",
    "zero_copy_read": "convert encodes and reduces read-only views of the .raw file's pages "
                      "(RippleScan.view_block: one mmap per block of whole rows, unmapped when the "
                      "engine drops the block) instead of a copy: the copy into fresh memory cost "
                      "0.17-0.5 CPU s/GiB on two threads (stages_two_threads before: read_block "
                      "0.24-0.49), the view 0.04 (its page faults land in the encode, +0.05-0.1); "
                      "same-process A/B, load 5: convert CPU median 1.83 vs 2.09 s/GiB",
    "summary_32_bit": "the max/argmax/sum walk with selects and 32-bit first-pixel and sum "
                      "accumulators for 8/16-bit counts (blocks of <= 65535 pixels) vectorises: "
                      "0.11 vs 0.29 CPU s/GiB on one thread",
    "flat_chunk_keys": "the cube's chunks as cube/c.I.J.0 in one folder: zarr's '/' keys made two "
                       "folders per chunk row, mkdir costs ~0.35 ms on this disk (256 mkdirs 0.09 "
                       "CPU s); A/B load 5.5: convert CPU median 1.52 vs 1.59 s/GiB",
    "rejected_reductions_before_encode": "the summary walk before the encode (the block then read "
                                         "from L3 by the second): CPU median 1.57 vs 1.53 s/GiB, "
                                         "no gain",
    "encode_is_the_floor": "the encode is now ~60 % of convert's CPU: blosc lz4 on bit-shuffled "
                           "blocks is ~0.5 CPU s/GiB for lz4 (pre-shuffled data, levels 1-9 "
                           "0.5-0.75) and ~0.45 for the bit shuffle, which numcodecs' PyPI wheel "
                           "builds with SSE2 only (no bitshuffle-avx2 in its blosc); an AVX2 build "
                           "would roughly halve the shuffle. zstd-1 and blosclz are slower, byte "
                           "shuffle halves the ratio",
    "cold_measurement": "the raw file is evicted (fsync + POSIX_FADV_DONTNEED, repeated while "
                        "mincore still finds pages) and checked before every cold run, in "
                        "numpy/convert pairs alternating order, median ratio; "
                        "/proc/sys/vm/drop_caches is not used (the other helpers' caches); before "
                        "each run a sync and one plain read of the file, then the eviction "
                        "(benchmarks.convert_pairs). The host's side of the virtual disk is out "
                        "of reach: cold numpy passes run 1.1-5 s for the same GiB in one hour, "
                        "3-5 s right after a convert and 1.1-1.3 s right after a numpy pass "
                        "(load 5-6), so the cold ratio is a median over alternating pairs. Under "
                        "that load a cold convert (2.9-3.8 s) is its warm time (2.7 s) plus "
                        "0.3-1 s: the cores, not the disk, bound it there. Read-ahead window 32 "
                        "vs 128 MiB: cold ratio median 1.62 vs 1.52 over 3 pairs each (load 4), "
                        "within the noise",
}
"""Why convert's pass is built as it is: measured on the 1 GiB cube (CPU s/GiB, one thread)."""


def codec_table(scan, rows: int = 4, n_blocks: int = 8) -> dict:
    """Encode and decode speed (one thread, CPU MB/s) and ratio of each codec on real blocks,
    plus byte shuffle for lz4 levels 1-5 and zstd-1 and no shuffle for lz4-5 (why bit shuffle)."""
    import time

    import crc32c
    import numcodecs.blosc
    from numcodecs import Blosc

    numcodecs.blosc.set_nthreads(1)
    h = scan.shape[0]
    step = max(rows, h // n_blocks // rows * rows)
    blocks = [scan.read_block(slice(r, r + rows), slice(None)) for r in range(0, h, step)][:n_blocks]
    nbytes = sum(b.nbytes for b in blocks)
    mb = nbytes / 2**20
    variants = {k: None if v is None else Blosc(v[0], v[1], Blosc.BITSHUFFLE) for k, v in CODECS.items()}
    for level in (1, 2, 3, 4, 5):
        variants[f"lz4-{level}-byteshuffle"] = Blosc("lz4", level, Blosc.SHUFFLE)
    variants["zstd-1-byteshuffle"] = Blosc("zstd", 1, Blosc.SHUFFLE)
    variants["lz4-5-noshuffle"] = Blosc("lz4", 5, Blosc.NOSHUFFLE)
    table = {}
    for name, codec in variants.items():
        enc_s = dec_s = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            enc = [codec.encode(b) if codec is not None else b.tobytes() for b in blocks]
            for e in enc:
                crc32c.crc32c(e)
            enc_s = min(enc_s, time.process_time() - t0)
            t0 = time.process_time()
            for e in enc:
                if codec is not None:
                    codec.decode(e)
            dec_s = min(dec_s, time.process_time() - t0)
        size = sum(len(e) + 4 for e in enc)
        table[name] = {"encode_MB_s": mb / enc_s,
                       "decode_MB_s": mb / dec_s if codec is not None and dec_s else None,
                       "ratio": nbytes / size}
    return table


def stage_profile(scan) -> dict:
    """CPU seconds of each stage of convert's pass over the whole cube, on one thread.

    read (a view of the page-cached file since zero_copy_read: its page faults then land in
    the encode), the summary spectra without and with the smoothed
    max (:class:`maxrf.summary.SummarySpectra`: max, argmax, mean in one compiled walk; the
    smoothed max in the same walk), encoding with the default compression, crc32c, and
    writing the chunk file.
    """
    import tempfile
    import time

    import crc32c
    import numcodecs.blosc
    from numcodecs import Blosc
    from threadpoolctl import threadpool_limits

    from maxrf import engine
    from maxrf.convert import ScanSource
    from maxrf.store import COMPRESSIONS, DEFAULT_COMPRESSION
    from maxrf.summary import SummarySpectra

    numcodecs.blosc.set_nthreads(1)
    cname, level = COMPRESSIONS[DEFAULT_COMPRESSION]
    codec = Blosc(cname, level, Blosc.BITSHUFFLE)
    block = engine.block_shape(scan.shape, 4)
    src = ScanSource(scan, block, False, False)
    plain, smoothed = SummarySpectra(scan.shape[1], smoothed=False), SummarySpectra(scan.shape[1])
    cpu = dict.fromkeys(["read", "summary_without_smoothed_max", "summary_with_smoothed_max",
                         "encode", "crc32c", "write"], 0.0)
    pairs = 0

    def tick(name, fn, *args):
        t0 = time.process_time()
        out = fn(*args)
        cpu[name] += time.process_time() - t0
        return out

    smoothed.start(scan.shape[:2])
    with threadpool_limits(1), tempfile.TemporaryDirectory(dir=WORK) as tmp:
        for b in src.blocks():
            data = tick("read", src.read_block, b)
            tick("summary_without_smoothed_max", plain.block, data, b)
            floor = smoothed.smax.floor(scan.shape[2])
            tick("summary_with_smoothed_max", smoothed.block, data, b)
            pairs += _pairs(data, floor)
            enc = tick("encode", codec.encode, data)
            tick("crc32c", crc32c.crc32c, enc)
            tick("write", _write_file, os.path.join(tmp, str(b.index)), enc)
    mb = scan.nbytes / 2**20
    bins = -(-scan.shape[2] // 4)
    return {"cpu_seconds": cpu, "MB_per_cpu_second": {k: mb / v if v else None for k, v in cpu.items()},
            "block": list(block),
            "smoothed_max_pairs_exact": pairs / (scan.shape[0] * scan.shape[1] * bins),
            "note": "smoothed max alone = summary_with - summary_without; pairs_exact: fraction "
                    "of (pixel, 4-channel bin) pairs smoothed exactly, the floor shared by blocks"}


def _pairs(data, floor) -> int:
    """(pixel, bin) pairs the pruned smoothed max smooths exactly on this block, given the floor."""
    from maxrf.seed_spectrum import smoothed_max

    stats: dict = {}
    smoothed_max(data.reshape(-1, data.shape[-1]), floor=floor, stats=stats)
    return round(stats["pairs"] * data.shape[0] * data.shape[1] * -(-data.shape[2] // 4))


def kernel_first_call() -> dict:
    """Seconds of the first summary-spectra call in a fresh interpreter: compiling the numba
    kernels (an empty cache directory: a new machine) and loading them from the cache (every
    later process), plus the import of numba; wall and CPU of the whole child."""
    import tempfile

    from benchmarks.common import child_usage

    code = (
        "import time, numpy as np\n"
        "from maxrf.summary import SummarySpectra\n"
        "from maxrf.engine import Block\n"
        "t0 = time.perf_counter()\n"
        "import maxrf.kernels\n"
        "t1 = time.perf_counter()\n"
        "s = SummarySpectra(8); s.start((8, 8))\n"
        "s.block(np.ones((8, 8, 2048), np.uint16), Block(0, slice(0, 8), slice(0, 8)))\n"
        "print('T', t1 - t0, time.perf_counter() - t1)\n"
    )
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, env in (("compile", {"NUMBA_CACHE_DIR": cache}), ("cached", {"NUMBA_CACHE_DIR": cache})):
            res = child_usage(code, env=env)
            line = [ln for ln in res["stdout"].splitlines() if ln.startswith("T ")][0]
            imp, first = (float(x) for x in line.split()[1:])
            out[name] = {"import_numba_s": imp, "first_call_s": first, "child_cpu_s": res["cpu_seconds"]}
    return out


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def main(gb: float = 1.0) -> dict:
    from maxrf import engine
    from maxrf.convert import ScanSource, convert
    from maxrf.io.ripple import open_scan

    load_start = os.getloadavg()  # other processes share the 2 cores: ratios suffer
    WORK.mkdir(parents=True, exist_ok=True)
    channels, width = 2048, 512
    height = int(gb * 2**30 / (channels * width * 2))
    rpl = WORK / "convert_bench.rpl"
    if not rpl.exists() or open_scan(rpl).shape != (height, width, channels):
        make_cube(rpl, height, width, channels)
    scan = open_scan(rpl)
    nbytes = scan.nbytes
    out = WORK / "convert_bench.datastack"

    # The machine is shared: numpy/convert pairs back to back, alternating order, the
    # median of the pairs' ratios (benchmarks.convert_pairs); the first convert in this
    # process loads the compiled kernels, so one convert runs before any timing.
    from benchmarks.convert_pairs import pairs, stages_two_threads
    from maxrf.store import COMPRESSIONS, DEFAULT_COMPRESSION, create_cube

    cpu: dict[str, list[float]] = {"maxrf_convert_seed_max": [], "seed_max_first_call": []}
    convert(rpl, out, calibrate=False, overwrite=True)
    warm = pairs(scan, rpl, out, n=7)
    t_numpy, t_convert = warm["seconds_median"]["numpy"], warm["seconds_median"]["convert"]
    cpu["numpy_pass"] = [p["numpy_cpu"] for p in warm["pairs"]]
    cpu["maxrf_convert"] = [p["convert_cpu"] for p in warm["pairs"]]
    stages_two = stages_two_threads(rpl, out, n=3)

    def bare_run():  # the cube written as convert writes it, no reductions
        bare = WORK / "bare.datastack"
        shutil.rmtree(bare, ignore_errors=True)
        block = engine.block_shape(scan.shape, 4)
        sink = create_cube(bare, scan.shape, scan.dtype, block)
        src = ScanSource(scan, block, False, False)
        t, _ = timed(engine.run, src, {}, sink=sink)
        shutil.rmtree(bare, ignore_errors=True)
        return t

    def convert_run():  # the default: no smoothed max spectrum
        shutil.rmtree(out, ignore_errors=True)
        c0 = time.process_time()
        t, _ = timed(convert, rpl, out, calibrate=False, overwrite=True)
        cpu["maxrf_convert"].append(time.process_time() - c0)
        return t

    def seed_max_first_call():  # the smoothed max on demand: one pass over the stored cube
        from maxrf import DataStack

        ds = DataStack(out)
        assert ds.smoothed_max_spectrum is None
        c0 = time.process_time()
        t, _ = timed(ds.max_spectrum)
        cpu["seed_max_first_call"].append(time.process_time() - c0)
        return t

    t_bare = min(bare_run() for _ in range(2))  # writing the cube, no reductions
    t_convert_min = min(convert_run() for _ in range(2))
    ratio_default = _stored_ratio(out, nbytes)
    t_seed_max_first_call = seed_max_first_call()

    none = pairs(scan, rpl, out, n=3, compression="none")

    def convert_seed_max():
        shutil.rmtree(out, ignore_errors=True)
        c0 = time.process_time()
        t, _ = timed(convert, rpl, out, calibrate=False, overwrite=True, seed_max=True)
        cpu["maxrf_convert_seed_max"].append(time.process_time() - c0)
        return t

    t_convert_seed_max = min(convert_seed_max() for _ in range(2))
    codecs = codec_table(scan)
    stages = stage_profile(scan)
    first_call = kernel_first_call()
    cold = pairs(scan, rpl, out, n=7, cold=True)
    cpu["maxrf_convert_cold_cache"] = [p["convert_cpu"] for p in cold["pairs"]]

    seed_out = WORK / "seed_style.zarr"
    t_seed, _ = timed(seed_style, rpl, seed_out)
    shutil.rmtree(seed_out, ignore_errors=True)

    budget_mb = max(16, int(nbytes / 2**20 / 16))
    code = (
        "from maxrf.convert import convert\n"
        f"convert({str(rpl)!r}, {str(out)!r}, calibrate=False, overwrite=True)\n"
        + PEAK_RSS_SNIPPET
    )
    t_child, rss = child_peak_rss(code, env={"MAXRF_BUDGET_MB": str(budget_mb)})
    shutil.rmtree(out, ignore_errors=True)

    mb = nbytes / 2**20
    result = {
        "load_average": {"start": load_start, "end": os.getloadavg(), "cpus": os.cpu_count(),
                         "note": "os.getloadavg() (1, 5, 15 min) at start and end"},
        "cube_bytes": nbytes,
        "shape": list(scan.shape),
        "dtype": str(scan.dtype),
        "seconds": {"numpy_pass": t_numpy, "numpy_pass_cold_cache": cold["seconds_median"]["numpy"],
                    "maxrf_convert": t_convert,
                    "maxrf_convert_cold_cache": cold["seconds_median"]["convert"],
                    "maxrf_convert_compression_none": none["seconds_median"]["convert"],
                    "maxrf_convert_seed_max": t_convert_seed_max,
                    "seed_max_first_call": t_seed_max_first_call,
                    "convert_without_reductions": t_bare, "seed_style_3_reads": t_seed},
        "throughput_MB_s": {"numpy_pass": mb / t_numpy, "maxrf_convert": mb / t_convert,
                            "seed_style_3_reads": mb / t_seed},
        "seconds_note": "numpy, convert, cold and compression none: medians of interleaved pairs "
                        "(warm_pairs, cold_pairs, compression_none_pairs); the rest best of two",
        "cpu_seconds": {k: min(v) for k, v in cpu.items()},
        "ratio_cpu_convert_to_numpy": warm["cpu_ratio_median"],
        "ratio_cpu_two_cores_to_numpy": warm["cpu_seconds_median"]["convert"] / 2
                                        / warm["cpu_seconds_median"]["numpy"],
        "ratio_cpu_two_cores_note": "convert's CPU seconds spread over the 2 cores against the "
                                    "numpy pass's (medians of warm_pairs): the wall ratio an idle "
                                    "2-core machine would give if both threads stayed busy the "
                                    "whole run (a lower bound; the quiet runs overlapped ~90 %); "
                                    "it depends far less on the load than the wall ratio",
        "ratio_cpu_convert_seed_max_to_numpy":
            min(cpu["maxrf_convert_seed_max"]) / min(cpu["numpy_pass"]),
        "cpu_seconds_per_GiB": {k: min(v) / (nbytes / 2**30) for k, v in cpu.items()},
        "cpu_note": "process CPU time (all threads): convert runs on 2 threads, the numpy pass "
                    "on one, so on an idle 2-core machine the wall ratio is about half the CPU ratio",
        "ratio_convert_to_numpy": warm["ratio_median"],
        "ratio_convert_to_numpy_cold_cache": cold["ratio_median"],
        "ratio_convert_none_to_numpy": none["ratio_median"],
        "ratio_note": "median over interleaved numpy/convert pairs in this process (alternating "
                      "order; cold: the raw file evicted before every run, cached_before = the "
                      "fraction of its pages still in the page cache by mincore). Under load "
                      "convert's two threads get less than two cores and numpy's one about one, "
                      "so loaded wall ratios overstate a quiet machine's; the CPU ratio does not "
                      "depend on the load as much",
        "warm_pairs": warm,
        "cold_pairs": cold,
        "compression_none_pairs": none,
        "stages_two_threads": stages_two,
        "ratio_convert_seed_max_to_numpy": t_convert_seed_max / t_numpy,
        "compression_ratio_default": ratio_default,
        "codecs": codecs,
        "default_compression": {"name": DEFAULT_COMPRESSION,
                                "codec": list(COMPRESSIONS[DEFAULT_COMPRESSION])},
        "stages_one_thread": stages,
        "kernel_first_call": first_call,
        "reductions_overhead": t_convert_min / t_bare - 1,
        "reductions_overhead_seed_max": t_convert_seed_max / t_bare - 1,
        "speedup_vs_seed_style": t_seed / t_convert_min,
        "peak_rss": {"budget_MB": budget_mb, "cube_over_budget": mb / budget_mb,
                     "peak_rss_MB": rss / 2**20, "limit_MB": budget_mb + 300,
                     "ok": rss / 2**20 < budget_mb + 300},
        "decisions": DECISIONS,
        "targets": {"ratio_convert_to_numpy": "<= 3", "ratio_convert_to_numpy_cold_cache": "<= 1.2",
                    "reductions_overhead": "< 0.10",
                    "peak_rss": "< budget + 300 MB"},
    }
    return result


if __name__ == "__main__":
    gb = float(sys.argv[1]) if len(sys.argv) > 1 else float(os.environ.get("MAXRF_BENCH_GB", 1.0))
    res = main(gb)
    print(save("convert", res))
    import json

    print(json.dumps(res, indent=2))
