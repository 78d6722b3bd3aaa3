"""Faults at scale: the crash harness and the hostile-input fuzzers, run harder than in
``make test``.

The same tests as the suite (``tests/test_crash.py``, ``tests/io/test_ripple_hostile.py``,
the fuzzers of ``tests/viewer/test_viewer.py``), in a pytest subprocess with more SIGKILLs per
operation on seeds the suite does not use, and more hypothesis examples. Saved: per
operation, the kills run and the states the store was found in afterwards (every kill
"survived" means the test's assertions held after each one: the store opened with a
complete previous or new state, or did not exist); per property, the examples hypothesis
tried (its own statistics), and whether every test passed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLS = 60  # per operation (the suite runs 20)
SEED_SHIFT = 1000  # seeds the suite never uses
HYPOTHESIS_SCALE = 10  # times the suite's max_examples
TESTS = ["tests/test_crash.py", "tests/io/test_ripple_hostile.py",
         "tests/viewer/test_viewer.py::test_fuzzed_queries_never_fail_the_server",
         "tests/viewer/test_viewer.py::test_fuzzed_paths_never_escape"]

_STAT = re.compile(r"^(tests/\S+::\w+):\s*$")
_CASES = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")


def parse_statistics(text: str) -> dict[str, dict[str, int]]:
    """Examples per test from the output of ``pytest --hypothesis-show-statistics``."""
    out: dict[str, dict[str, int]] = {}
    current = None
    for line in text.splitlines():
        m = _STAT.match(line.strip())
        if m:
            current = m.group(1)
            continue
        m = _CASES.search(line)
        if m and current:
            entry = out.setdefault(current, {"passing": 0, "failing": 0, "invalid": 0})
            for key, val in zip(("passing", "failing", "invalid"), m.groups()):
                entry[key] += int(val)
    return out


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "faults.jsonl"
        env = {**os.environ, "MAXRF_CRASH_KILLS": str(KILLS),
               "MAXRF_CRASH_SEED": str(SEED_SHIFT), "MAXRF_FAULT_LOG": str(log),
               "MAXRF_HYPOTHESIS_SCALE": str(HYPOTHESIS_SCALE)}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "--hypothesis-show-statistics", "-rf", *TESTS],
            cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    summary_line = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln]
    stats = parse_statistics(proc.stdout)
    kills = {r["operation"]: {"kills": r["kills"], "survived": r["kills"], "states": r["states"]}
             for r in records}  # a record is written only once every kill's check has held
    return {
        "all_passed": proc.returncode == 0,
        "pytest": summary_line[-1].strip("= ") if summary_line else proc.stdout[-500:],
        "seconds": round(seconds, 1),
        "kills_per_operation": KILLS,
        "seed_shift": SEED_SHIFT,
        "hypothesis_scale": HYPOTHESIS_SCALE,
        "sigkill": kills,
        "sigkill_total": sum(k["kills"] for k in kills.values()),
        "hypothesis": stats,
        "hypothesis_examples_total": sum(s["passing"] + s["failing"] for s in stats.values()),
        "failures": [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")],
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
