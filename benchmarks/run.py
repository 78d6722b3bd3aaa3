"""Run every benchmark (``make bench``); each saves benchmarks/results/NAME.json."""

from __future__ import annotations

import importlib
import json
import sys
import traceback

# one per line, so that adding a benchmark is a one-line change
BENCHMARKS = [
    "bench_convert",
    "bench_maps",
    "bench_identify",
    "bench_speckles",
    "bench_viewer",
    "bench_faults",
    "bench_decompose",
    "bench_calibration",
    "bench_segmentation",
    "bench_everyday",
    "bench_registration",
    "bench_multi_plot",
]


def main(names: list[str]) -> int:
    failed = []
    for name in names or BENCHMARKS:
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError:
            print(f"-- {name}: not present, skipped")
            continue
        print(f"== {name}", flush=True)
        try:
            result = mod.main()
            if result is not None:
                from benchmarks.common import save

                print(save(name.removeprefix("bench_"), result))
                print(json.dumps(result, indent=1, default=float)[:3000])
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
