"""Helpers shared by the CLI commands (printing JSON, opening stores)."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on standard output (numpy values made plain)."""
    json.dump(obj, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")


def add_scheduler(parser) -> None:
    """``--scheduler ADDRESS``: run on a dask.distributed cluster (else MAXRF_SCHEDULER)."""
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="dask.distributed scheduler address (default: $MAXRF_SCHEDULER or local threads)",
    )


def client_from(args) -> Any:
    """A distributed Client for ``--scheduler``, or None (the engine reads MAXRF_SCHEDULER)."""
    from maxrf.engine import get_client

    address = getattr(args, "scheduler", None)
    return get_client(address) if address else None
