"""Progress that shows without a terminal: a bar on a terminal, lines in logs and notebooks.

A tqdm bar needs a terminal; ``!maxrf convert`` in a notebook, a log file or a batch job
showed nothing for minutes. :class:`Progress` draws the bar on a terminal and otherwise
writes one line when a stage starts, one per :data:`STEP_PERCENT` of the work (or every
:data:`EVERY_SECONDS`, whichever comes later) and one at the end, to standard error.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

STEP_PERCENT = 10
"""Log a line each time this many percent more of the work is done."""

EVERY_SECONDS = 2.0
"""...but not more often than this (seconds), except the last line."""


class Progress:
    """Progress of ``total`` units of one stage (``description``).

    Parameters
    ----------
    total : int
        Units of work (blocks).
    description : str
        The stage's name (``'convert'``, ``'maps'``).
    unit : str
        What a unit is, for the messages.
    stream : file, optional
        Where to write (default standard error); a bar only when it is a terminal.
    """

    def __init__(self, total: int, description: str, unit: str = "block",
                 stream: TextIO | None = None):
        self.total = max(int(total), 0)
        self.description = description
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._bar: Any = None
        self._next_pct = STEP_PERCENT
        self._last = 0.0
        self._t0 = time.monotonic()
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=description, unit=unit, file=self.stream)
        else:
            self._line(f"{description}: started ({self.total} {unit}s)")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if not self.total:
            return
        pct = 100 * self.done // self.total
        now = time.monotonic()
        if self.done < self.total and pct >= self._next_pct and now - self._last >= EVERY_SECONDS:
            self._line(f"{self.description}: {pct}% ({self.done}/{self.total} {self.unit}s)")
            self._last = now
            self._next_pct = (pct // STEP_PERCENT + 1) * STEP_PERCENT

    def close(self) -> None:
        """End of the stage: the bar closes, or a last line with the time taken."""
        if self._bar is not None:
            self._bar.close()
        elif self.done >= self.total:
            self._line(f"{self.description}: 100% ({self.done}/{self.total} {self.unit}s) in "
                       f"{time.monotonic() - self._t0:.1f} s")
