"""Type aliases of maxrf's public signatures (for annotations only; nothing runs here).

``ArrayLike`` a spectrum or map given as anything numpy converts (counts, keV...);
``PathLike`` a file or folder path; ``ClientLike`` where a pass may run (a
``dask.distributed.Client``, a scheduler address, or None for ``MAXRF_SCHEDULER`` or
local threads); ``DataStackLike`` a DataStack or the path of one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeAlias

from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    from distributed import Client

    from maxrf.store import DataStack

PathLike: TypeAlias = "str | os.PathLike[str]"
ClientLike: TypeAlias = "Client | str | None"
DataStackLike: TypeAlias = "DataStack | str | os.PathLike[str]"

__all__ = ["ArrayLike", "ClientLike", "DTypeLike", "DataStackLike", "PathLike"]
