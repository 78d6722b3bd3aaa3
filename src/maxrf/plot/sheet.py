"""An overview sheet of many maps saved as one PNG (the export's matplotlib part)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def save_sheet(images: Sequence[np.ndarray], titles: Sequence[str], path: Path) -> Path:
    """:func:`maxrf.plot.maps.multi_plot` of ``images`` saved to ``path`` and closed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from maxrf.plot.maps import multi_plot

    fig, _ = multi_plot(*images, titles=list(titles), cmap="viridis", fontsize="medium")
    try:
        fig.savefig(path, dpi=72 if len(images) > 16 else 100)
    finally:
        plt.close(fig)
    return Path(path)
