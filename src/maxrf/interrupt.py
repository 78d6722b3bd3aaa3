"""Ctrl-C that is never lost, and a clean-up it cannot cut short.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the
signal arrives; inside a finaliser or a callback the exception is printed as
"Exception ignored in ..." and dropped, and the work carries on. :func:`install`
(the CLI calls it for long commands) records the request as well as raising it, and the
engine calls :func:`check` after every block it collects, so a swallowed interrupt is
raised again at the next block. A second signal while the first is being handled only
records itself: the clean-up of the partial output runs to its end.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_pending = threading.Event()
_deferring = [0]  # depth of deferred() blocks (main thread only: signals arrive there)


def _handler(signum: int, frame: Any) -> None:
    if _pending.is_set():
        return  # already stopping: let the clean-up finish
    _pending.set()
    if _deferring[0]:
        return  # raised when the deferred block ends
    raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal during the block is recorded and raised when the block ends.

    For short writes through zarr: zarr runs them on its own thread, so an interrupt
    raised while the caller waits would leave that thread writing files into a folder the
    clean-up has just removed.
    """
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    check()


_previous: dict[int, Any] = {}


def install() -> None:
    """Route SIGINT and SIGTERM through the recording handler (main thread only), until
    :func:`restore` (the CLI's ``main`` calls it once the command has answered)."""
    _pending.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.signal(sig, _handler)
        _previous.setdefault(sig, previous)


def restore(exiting: bool = False) -> None:
    """Put back the handlers :func:`install` replaced (nothing if it was not called).

    After an interrupt, or with ``exiting`` (the command ran as the process, which is on
    its way out), further signals are ignored instead: a Ctrl-C during the interpreter's
    shutdown (when Python has put the default handler back) must not turn the clean exit
    into a death by signal.
    """
    if _pending.is_set() or exiting:
        for sig in _previous:
            signal.signal(sig, signal.SIG_IGN)
        return
    while _previous:
        sig, handler = _previous.popitem()
        signal.signal(sig, handler)


def ignore_further() -> None:
    """Ignore SIGINT and SIGTERM from now on: an interrupt has been taken and the process is
    on its way out.

    The first Ctrl-C may land before :func:`install` ran (during start-up or option
    parsing), when Python's own handler raised it; a second one during the exit would then
    meet that handler again, or the interpreter's shutdown, and kill the process by signal
    after the one-line message was printed.
    """
    _pending.set()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def pending() -> bool:
    """Whether an interrupt was asked for (since :func:`install`)."""
    return _pending.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if an interrupt was asked for and then swallowed."""
    if _pending.is_set():
        raise KeyboardInterrupt
