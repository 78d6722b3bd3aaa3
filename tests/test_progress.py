"""Progress shows without a terminal (lines), as a bar on one, and --quiet silences it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from conftest import poisson_cube, write_pair

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_lines_without_a_terminal(monkeypatch):
    from maxrf import progress

    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    out = io.StringIO()
    p = progress.Progress(40, "convert", stream=out)
    for _ in range(40):
        p.update()
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "convert: started (40 blocks)"
    assert [ln.split()[1] for ln in lines[1:-1]] == [f"{k}%" for k in range(10, 100, 10)]
    assert lines[-1].startswith("convert: 100% (40/40 blocks) in ")


def test_bar_on_a_terminal():
    from maxrf import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    p = progress.Progress(5, "maps", stream=out)
    for _ in range(5):
        p.update()
    p.close()
    text = out.getvalue()
    assert "5/5" in text and "started" not in text  # tqdm's bar, not the log lines


def test_convert_cli_progress_in_a_log_and_quiet(tmp_path):
    rpl = write_pair(tmp_path, poisson_cube(5, shape=(40, 30, 64)))
    env = dict(os.environ, PYTHONPATH=SRC, MAXRF_BUDGET_MB="0.05")
    cmd = [sys.executable, "-m", "maxrf", "convert", rpl, "--no-calibrate"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)  # stderr is a pipe: a log
    assert r.returncode == 0, r.stderr
    assert "convert: started" in r.stderr and "convert: 100%" in r.stderr
    r = subprocess.run([*cmd, "--overwrite", "--quiet"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
