"""multi_plot of many images (issue 19: the seed's ``multi_plot(*peak_maps_histeq)`` of a raw
scan's hundreds of peak maps ran for minutes).

In one process, CPU time (``time.process_time``: the machine is shared) to lay out n
images of 96 x 128 pixels with titles, for
- ``maxrf.multi_plot`` (axes shared once every image is drawn), and
- the way of the seed and of maxrf before: axes shared from the start
  (``plt.subplots(sharex=True, sharey=True)``), so each image's limits reach every axes.
Ratios are against 8 images in the same process; the load average is recorded.
"""

from __future__ import annotations

import os
import time

import numpy as np

SIZES = (8, 60, 120, 240)
SHARED_FROM_START_MAX = 120  # beyond this the old way takes minutes


def _shared_from_start(images, titles):
    """The seed's layout: 4 per row, axes shared before the images are drawn (the rest as
    maxrf's, layout included, so that only the sharing differs)."""
    import matplotlib.pyplot as plt

    from maxrf.plot.maps import _layout

    n = len(images)
    nrows, ncols = -(-n // 4), min(n, 4)
    fig, axs = plt.subplots(nrows, ncols, figsize=(9, 9 / 2 + 2 * (nrows - 1)), squeeze=False,
                            sharex=True, sharey=True)
    for ax, img, t in zip(axs.flat, images, titles):
        ax.imshow(img, cmap="Greys_r")
        ax.set_title(t)
    for ax in axs.flat[n:]:
        ax.remove()
    _layout(fig, n)
    return fig


def _cpu(fn, *args, **kwargs) -> float:
    import matplotlib.pyplot as plt

    t0 = time.process_time()
    fig = fn(*args, **kwargs)
    seconds = time.process_time() - t0
    plt.close(fig[0] if isinstance(fig, tuple) else fig)
    return seconds


def main() -> dict:
    import matplotlib

    matplotlib.use("Agg")
    from maxrf.plot.maps import multi_plot

    rng = np.random.default_rng(0)
    images = [rng.random((96, 128)) for _ in range(max(SIZES))]
    titles = [f"[{i}]" for i in range(max(SIZES))]
    _cpu(multi_plot, *images[:8], titles=titles[:8])  # warm-up: imports, fonts
    rows = []
    for n in SIZES:
        new = _cpu(multi_plot, *images[:n], titles=titles[:n])
        old = (_cpu(_shared_from_start, images[:n], titles[:n])
               if n <= SHARED_FROM_START_MAX else None)
        rows.append({"images": n, "cpu_seconds_maxrf": new, "cpu_seconds_shared_from_start": old})
    base_new = rows[0]["cpu_seconds_maxrf"]
    base_old = rows[0]["cpu_seconds_shared_from_start"]
    for r in rows:
        r["ratio_to_8_maxrf"] = r["cpu_seconds_maxrf"] / base_new
        if r["cpu_seconds_shared_from_start"] is not None:
            r["ratio_to_8_shared_from_start"] = r["cpu_seconds_shared_from_start"] / base_old
    return {"image_shape": [96, 128], "rows": rows, "loadavg": list(os.getloadavg())}


if __name__ == "__main__":
    from benchmarks.common import save

    print(save("multi_plot", main()))
