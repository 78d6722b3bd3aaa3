"""The engine's dask side: the client to run on, and running blocks as cluster tasks.

:func:`maxrf.engine.run` hands its tasks here when a ``dask.distributed`` client is given
(or ``MAXRF_SCHEDULER`` names a scheduler address); :func:`compute` runs the few small
dask reads outside the engine's pass on that client or on the local threaded scheduler.
distributed is imported only when a cluster is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from maxrf.errors import ClusterError
from maxrf.types import ClientLike

if TYPE_CHECKING:
    from distributed import Client

    from maxrf.engine import Block

__all__ = ["compute", "get_client", "run_distributed"]


_CLIENTS: dict[str, Any] = {}


def get_client(client: ClientLike = None) -> Client | None:
    """The dask.distributed client to run on: the one given, or ``MAXRF_SCHEDULER``, or None.

    ``client`` may also be a scheduler address (``'tcp://host:8786'``). One client per
    address is kept for the process, so the steps of a pipeline share it.
    """
    if client is not None and not isinstance(client, str):
        return client
    address = client or os.environ.get("MAXRF_SCHEDULER")
    if not address:
        return None
    known = _CLIENTS.get(address)
    if known is not None and known.status == "running":
        return known
    from distributed import Client

    try:
        _CLIENTS[address] = Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the dask scheduler at {address!r} ({exc})") from None
    return _CLIENTS[address]


def compute(*collections: Any, client: ClientLike = None) -> tuple:
    """``dask.compute`` on the cluster (a client, an address or ``MAXRF_SCHEDULER``) or,
    without one, on the local threaded scheduler: for the few small reads outside
    :func:`run` (pixel spectra, region spectra, chunk checks)."""
    import dask.threaded

    client = get_client(client)
    # the threaded scheduler's function, not its name: a name makes dask import distributed
    # to look for a default client (~0.6 s and ~13 MB in every process)
    return dask.compute(*collections, scheduler=client if client is not None else dask.threaded.get)


def run_distributed(client: Any, blocks: list[Block], tasks: list, feed: Callable, progress: bool,
                     description: str) -> None:
    """Run on a dask.distributed cluster, feeding and releasing each result as it arrives."""
    from distributed import as_completed

    futures = client.compute(tasks)
    where_of = {f.key: b for f, b in zip(futures, blocks)}
    bar = None
    if progress:
        from maxrf.progress import Progress

        bar = Progress(len(futures), description)
    try:
        # the client's own loop: it is not the default client (set_as_default=False when
        # made from an address), and as_completed would otherwise look for a default one
        for fut in as_completed(futures, loop=client.loop):
            feed(where_of[fut.key], fut.result())
            fut.release()
            if bar is not None:
                bar.update(1)
    except BaseException:
        client.cancel(futures)
        _wait_until_idle(client, [f.key for f in futures])
        raise
    finally:
        if bar is not None:
            bar.close()


def _executing_keys(dask_worker: Any = None) -> list:
    """Keys a worker is still executing (runs on the worker through ``client.run``)."""
    try:
        return [ts.key for ts in dask_worker.state.executing]
    except AttributeError:  # another distributed version: cannot tell
        return []


def _wait_until_idle(client: Any, keys: list, timeout: float = 60.0) -> None:
    """After cancelling ``keys``, wait (up to ``timeout`` s) until no worker still executes
    one: a cancelled task that is already running is not stopped by dask, and its writes
    must end before the caller removes the partial output."""
    import time

    wanted = set(keys)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_executing_keys)
        except Exception:  # noqa: BLE001 - a worker gone or the cluster down: nothing to wait for
            return
        if not any(wanted.intersection(ks) for ks in running.values()):
            return
        time.sleep(0.05)
