"""The seed's call shapes, kept working in one visible place.

maxrf keeps the public names and behaviour of the maxrf4u notebooks it started from.
Where those differ from maxrf's own shapes, the difference is bridged here and nowhere
else, so the rest of the package stays one call shape per idea:

==========================================  ==============================================
seed call                                   maxrf's own shape (what the shim forwards to)
==========================================  ==============================================
``ds.energies()``, ``ds.max_spectrum()``    properties ``ds.energies`` ... (:class:`SeedArray`)
``ds.maxrf_cube``                           ``ds.cube`` (alias on :class:`maxrf.store.DataStack`)
``atlas.plot_spectrum(n)``,                 :func:`maxrf.plot.plot_spectrum`,
``atlas.plot_spectra()``                    :func:`maxrf.plot.plot_spectra` (:class:`HotmaxPlots`)
``plot_peak_slices(x_keVs, y_max)``         slices from :func:`maxrf.maps.get_slices`, then
                                            :func:`maxrf.plot.maps.plot_peak_slices`
``plot_puzzle(ds, n)``                      :class:`~maxrf.hotmax.HotmaxAtlas` of ``ds``, then
                                            :func:`maxrf.plot.puzzle.plot_puzzle`
``atlas, table = find_speckles(...)``       :class:`~maxrf.speckles.SpeckleResult` unpacks as
                                            a pair (:class:`PairResult`)
``write=`` (identify), ``as_dict()``        ``store=``, ``to_dict()`` (:func:`renamed_keyword`
                                            warns with a DeprecationWarning)
==========================================  ==============================================

Plot functions return ``(fig, ax)`` (``(fig, axes)`` for several panels); the seed's
shapes kept as they were are :func:`maxrf.plot.plot_puzzle` (``ax0, ax1``),
:func:`maxrf.plot.plot_ptrn` (a dict) and :func:`maxrf.plot.plot_patterns` (``ax``).

This module imports nothing of maxrf at import time (the store and hotmax import it);
the plotting and computing it bridges are imported inside the shims.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # matplotlib's types, named where matplotlib may be imported
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.plot.images import Axes, Figure
    from maxrf.types import DataStackLike


class SeedArray(np.ndarray):
    """An ndarray that also answers a call, so ``ds.energies`` and the seed's
    ``ds.energies()`` both work.

    The call returns what the seed's call returned where that differs: ``ds.max_spectrum()``
    is the smoothed max spectrum of maxrf4u (``seed_call``), ``ds.max_spectrum`` the raw one.
    ``seed_call`` is that array, or a function computing it, called only by the call (the
    smoothed max of a store converted without it takes a pass over the cube, which the
    attribute must never cost).
    """

    seed_call: np.ndarray | Callable[[], np.ndarray] | None = None

    def __call__(self) -> np.ndarray:
        call = self.seed_call
        if call is not None and not isinstance(call, np.ndarray):
            call = call()
        return np.asarray(self if call is None else call)


def seed_array(a: np.ndarray) -> SeedArray:
    """A read-only :class:`SeedArray` view of ``a``."""
    out = np.asarray(a).view(SeedArray)
    out.flags.writeable = False
    return out


class HotmaxPlots:
    """The seed's plotting methods of :class:`maxrf.hotmax.HotmaxAtlas` (drawn by maxrf.plot)."""

    def plot_spectrum(self, n: int, ax: Axes | None = None) -> tuple[Figure, Axes]:
        """Plot hotmax spectrum ``n`` with baseline, envelope and sub-peaks
        (:func:`maxrf.plot.spectra.plot_spectrum`)."""
        from maxrf.plot.spectra import plot_spectrum

        return plot_spectrum(self, n, ax=ax)

    def plot_spectra(self) -> tuple[Figure, Sequence[Axes]]:
        """Plot all hotmax spectra stacked (:func:`maxrf.plot.spectra.plot_spectra`)."""
        from maxrf.plot.spectra import plot_spectra

        return plot_spectra(self)


class PairResult:
    """Mixin: a result that unpacks as the seed's pair ``first, second = result``.

    Subclasses name the two attributes in ``_pair``.
    """

    _pair: tuple[str, str] = ("", "")

    def __iter__(self) -> Iterator[Any]:
        return iter((getattr(self, self._pair[0]), getattr(self, self._pair[1])))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> Any:
        return getattr(self, self._pair[i])


def renamed_keyword(old: str, new: str, value: Any, default: Any, where: str) -> Any:
    """The value of keyword ``new`` given the deprecated spelling ``old`` (DeprecationWarning)."""
    if value is None:
        return default
    warnings.warn(f"{where}: {old}= is deprecated, use {new}=", DeprecationWarning, stacklevel=3)
    return value


def plot_peak_slices(
    x_keVs: np.ndarray | Sequence[float],
    y_max: np.ndarray | Sequence[float],
    ax: Axes | None = None,
    prominence: float = 0.5,
    rel_height: float = 0.2,
    grid: bool = False,
    labels: str = "simple",
    figsize: Sequence[float] = (8, 5),
    *,
    slices: np.ndarray | None = None,
    peaks_xy: np.ndarray | None = None,
) -> tuple[Figure, Axes]:
    """The seed's ``plot_peak_slices``: finds the peak slices when not given, then draws them.

    Parameters are those of :func:`maxrf.plot.maps.plot_peak_slices`, plus ``prominence``
    and ``rel_height`` for :func:`maxrf.maps.get_slices`.
    """
    from maxrf.plot import maps as plot_maps

    if slices is None or peaks_xy is None:
        from maxrf.maps import get_slices

        peaks_xy, slices = get_slices(np.asarray(x_keVs, dtype=float), np.asarray(y_max, dtype=float),
                                      prominence=prominence, rel_height=rel_height)
    return plot_maps.plot_peak_slices(x_keVs, y_max, slices, peaks_xy, ax=ax, grid=grid,
                                      labels=labels, figsize=figsize)


def plot_puzzle(atlas: HotmaxAtlas | DataStackLike, n: int, **kw: Any) -> tuple[Axes, Axes]:
    """The seed's ``plot_puzzle``: ``atlas`` may also be a DataStack or its path, whose
    stored (or newly built, not stored) hotmax atlas is drawn. See
    :func:`maxrf.plot.puzzle.plot_puzzle` for the keywords."""
    from maxrf.plot.puzzle import plot_puzzle as draw

    if not hasattr(atlas, "hotmax_spectra"):
        from maxrf.hotmax import HotmaxAtlas

        atlas = HotmaxAtlas(atlas, store=False)
    return draw(atlas, n, **kw)
