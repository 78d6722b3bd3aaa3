"""Map plots (maxrf.plot.maps): what is drawn, and bad options raise ParameterError."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from maxrf.compat import plot_peak_slices as seed_plot_peak_slices
from maxrf.errors import ParameterError
from maxrf.plot import maps as pm

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _spectrum():
    x = np.linspace(0, 20, 1000)
    y = 1 + 50 * np.exp(-0.5 * ((x - 6.4) / 0.07) ** 2) + 20 * np.exp(-0.5 * ((x - 8.0) / 0.08) ** 2)
    return x, y


def test_plot_peak_slices_labels_and_slices():
    from maxrf.maps import get_slices

    x, y = _spectrum()
    fig, ax = seed_plot_peak_slices(x, y, labels="full")  # the seed call finds the slices
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 2 and all(t.endswith("keV") for t in texts)
    assert [float(t.split("\n")[1][:-3]) for t in texts] == pytest.approx([6.4, 8.0], abs=0.02)
    assert len(ax.collections) == 1 + 2  # peak markers + one filled slice per peak
    _, slices = get_slices(x, y)
    fig2, ax2 = plt.subplots()
    f, a = pm.plot_peak_slices(x, y, ax=ax2, slices=slices, peaks_xy=np.c_[[6.4, 8.0], [51, 21]])
    assert f is fig2 and a is ax2
    assert [t.get_text() for t in a.texts] == ["[0]", "[1]"]


def test_plot_peak_slices_bad_labels():
    x, y = _spectrum()
    with pytest.raises(ParameterError, match="labels"):
        seed_plot_peak_slices(x, y, labels="fancy")
    with pytest.raises(ParameterError, match="labels"):
        pm.plot_peak_slices(x, y, np.zeros((0, 3)), np.zeros((0, 2)), labels="fancy")


@pytest.mark.parametrize(("n", "shape"), [(1, (1, 1)), (3, (1, 3)), (4, (1, 4)), (5, (2, 4)), (9, (3, 4))])
def test_multi_plot_folds_rows_of_four(n, shape):
    imgs = [np.random.default_rng(i).random((6, 8)) for i in range(n)]
    fig, axs = pm.multi_plot(*imgs, titles=[f"t{i}" for i in range(n)], axis_off=n == 3)
    assert axs.shape == shape
    assert len(fig.axes) == n  # the empty slots are removed
    assert [a.get_title() for a in fig.axes] == [f"t{i}" for i in range(n)]
    assert fig.get_size_inches()[1] == pytest.approx(9 / 2 + 2 * (shape[0] - 1))


def test_multi_plot_zoom_and_errors():
    fig, axs = pm.multi_plot(np.zeros((50, 60)), np.ones((50, 60)), zoom_xyc=(30, 20),
                             zoom_half_wh=(5, 4))
    assert axs[0, 0].get_xlim() == (25, 35) and axs[0, 1].get_ylim() == (24, 16)
    with pytest.raises(ParameterError):
        pm.multi_plot()


def test_plot_map_colorbar_and_title():
    fig, ax = pm.plot_map(np.arange(12.0).reshape(3, 4), title="Fe", label="counts")
    assert ax.get_title() == "Fe"
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "counts"
    with pytest.raises(ParameterError):
        pm.plot_map(np.zeros(5))


def test_plot_speckles_circles_at_centroids():
    from matplotlib.patches import Circle

    img = np.zeros((20, 30))
    cen = np.array([[5.0, 10.0], [12.5, 20.0]])
    fig, ax = pm.plot_speckles(img, cen, radii=[2, 3], numbers=True, title="Fe")
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    assert len(circles) == 2
    assert circles[0].center == (10.0, 5.0) and circles[1].radius == 3  # (x=col, y=row)
    assert [t.get_text() for t in ax.texts] == ["0", "1"]
    fig, ax = pm.plot_speckles(img, np.zeros((0, 2)))
    assert not ax.patches


def test_lazy_reexports():
    import maxrf
    import maxrf.plot

    assert maxrf.plot.multi_plot is pm.multi_plot
    assert maxrf.plot_peak_slices is maxrf.plot.plot_peak_slices is seed_plot_peak_slices
    assert maxrf.get_peakmaps.__module__.startswith("maxrf.maps")


def _make_seconds(n: int, images: list[np.ndarray]) -> float:
    """CPU seconds (this process) to lay out ``n`` images with multi_plot."""
    import time

    t0 = time.process_time()
    fig, _axs = pm.multi_plot(*images[:n], titles=[f"[{i}]" for i in range(n)])
    seconds = time.process_time() - t0
    plt.close(fig)
    return seconds


def test_multi_plot_of_many_images_grows_in_proportion():
    """The seed's ``multi_plot(*peak_maps_histeq)`` of a raw scan's 671 peak maps ran for
    minutes: each image drawn into axes shared with all the others updated all of them.
    160 images (20 x as many) must cost at most twice 20 x what 8 cost, in CPU time of
    this process (measured: about 10 x; the old way took about 68 x, and its growth is
    quadratic, so more images part the two further)."""
    rng = np.random.default_rng(0)
    images = [rng.random((48, 64)) for _ in range(160)]
    _make_seconds(8, images)  # warm-up: imports, font cache
    small = min(_make_seconds(8, images) for _ in range(3))
    big = _make_seconds(160, images)
    assert big <= 2 * 20 * small, (big, small)


def test_multi_plot_shares_limits_and_labels_outer_axes():
    fig, axs = pm.multi_plot(*[np.zeros((10, 20))] * 6)
    axs[0, 0].set_xlim(2, 8)
    assert axs[1, 1].get_xlim() == (2, 8)  # shared: zooming one zooms all
    labelled = [a.xaxis.get_tick_params()["labelbottom"] for a in fig.axes]
    assert labelled == [False, False, True, True, True, True]  # bottom axes of each column
    fig, axs = pm.multi_plot(np.zeros((10, 20)), np.zeros((10, 20)), sharex=False, sharey=False)
    axs[0, 0].set_xlim(2, 8)
    assert axs[0, 1].get_xlim() != (2, 8)
