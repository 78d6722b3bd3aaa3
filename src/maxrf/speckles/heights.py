"""The height scan of a map: one top-down union-find sweep over its pixels.

For ``n_heights`` heights, the number of 4-connected regions above each height, the largest
one's area and its :func:`skimage.measure.label` label, identical to labelling the map at
every height but touching every pixel once.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from maxrf.arrays import as_map
from maxrf.types import ArrayLike


def _as_map(peak_map: ArrayLike, name: str = "peak_map") -> np.ndarray:
    """Return ``peak_map`` as a float64 2-D array; NaN allowed (no data), inf not."""
    return as_map(peak_map, name)


def _height_levels(values: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Level of every pixel: the number of heights strictly below its value.

    A pixel is above height ``heights[k]`` (``value > heights[k]``) exactly when its level
    is ``> k``. NaN pixels get level 0 (never above any height). Computed in slices of
    the map, so no full-size int64 temporary is made.
    """
    flat = values.ravel()
    dtype = np.uint8 if heights.size < 255 else np.uint16 if heights.size < 65535 else np.int64
    levels = np.empty(flat.size, dtype=dtype)
    for s0 in range(0, flat.size, SLICE_PIXELS):
        part = flat[s0 : s0 + SLICE_PIXELS]
        nan = np.isnan(part)
        if nan.any():
            part = np.where(nan, -np.inf, part)
        levels[s0 : s0 + SLICE_PIXELS] = np.searchsorted(heights, part, side="left")
    return levels.reshape(values.shape)


#: pixels handled at once in the full-map passes and the height scan's steps: bounds their
#: temporaries (about 60 bytes a pixel) whatever the map size
SLICE_PIXELS = 2**18


_FOUR = ndi.generate_binary_structure(2, 1)  # 4-connectivity


# ---------------------------------------------------------------------------------------
# the height scan: one union-find sweep
# ---------------------------------------------------------------------------------------


def _find_roots(cparent: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Roots of components ``ids`` in the union-find forest ``cparent``, with path compression."""
    roots = cparent[ids]
    while True:
        up = cparent[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    cparent[ids] = roots
    return roots


class _Forest:
    """Union-find forest of the regions: parent, size and first raster pixel per component,
    in arrays that grow as components are created (usually far fewer than pixels)."""

    def __init__(self, n_pixels: int, idt: type):
        self.idt = idt
        cap = max(16, min(n_pixels, 2**16))
        self.parent = np.zeros(cap, dtype=idt)
        self.size = np.zeros(cap, dtype=idt)
        self.first = np.zeros(cap, dtype=idt)
        self.n = 0

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= self.parent.size:
            return
        cap = max(need, 2 * self.parent.size)
        for name in ("parent", "size", "first"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=self.idt)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)


class _Sweep:
    """State of the top-down sweep: the component each pixel entered with, the live regions'
    first pixels, the union-find forest, the number of live regions and the largest one."""

    def __init__(self, levels: np.ndarray):
        self.H, self.W = levels.shape
        self.N = self.H * self.W
        self.idt = np.int32 if self.N < 2**31 - 1 else np.int64
        self.lf = levels.ravel()
        self.pix_comp = np.full(self.N, -1, dtype=self.idt)  # component a pixel entered with
        self.alive_first = np.zeros(self.N, dtype=bool)  # raster index starts a live region
        self.forest = _Forest(self.N, self.idt)
        self.n_alive = 0
        self.best = -1  # live component with the largest area (ties: smallest first pixel)

    def _edges(self, new: np.ndarray, lvl: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                           np.ndarray]:
        """Edges among the entering pixels ``new`` (indices into ``new``), and from them to
        pixels already present: ``(e_src, e_dst, old_src, old_pix)``."""
        H, W, lf, idt = self.H, self.W, self.lf, self.idt
        lo, hi = int(new[0]), int(new[-1])  # this step holds every level pixel in lo..hi
        r = new // W
        c = new - r * W
        e_src: list[np.ndarray] = []
        e_dst: list[np.ndarray] = []
        o_src: list[np.ndarray] = []
        o_pix: list[np.ndarray] = []
        for valid, off in ((c < W - 1, 1), (r < H - 1, W), (c > 0, -1), (r > 0, -W)):
            idx = np.flatnonzero(valid)
            nb = new[idx] + idt(off)
            ln = lf[nb]
            same = ln == lvl
            if off > 0:  # entering-entering edges of this step: right and down suffice
                sel = same & (nb <= hi)
                e_src.append(idx[sel])
                e_dst.append(np.searchsorted(new, nb[sel]))
                old = ln > lvl  # same-level pixels after hi enter in a later step
            else:  # left and up: same-level pixels before lo entered in an earlier step
                old = (ln > lvl) | (same & (nb < lo))
            o_src.append(idx[old])
            o_pix.append(nb[old])
        return (np.concatenate(e_src), np.concatenate(e_dst), np.concatenate(o_src),
                np.concatenate(o_pix))

    def enter(self, new: np.ndarray, lvl: int) -> None:
        """Let the pixels ``new`` (ascending raster order, all of level ``lvl``) enter."""
        forest, idt, m = self.forest, self.idt, new.size
        e_src, e_dst, old_src, old_pix = self._edges(new, lvl)
        roots = _find_roots(forest.parent, self.pix_comp[old_pix])
        self.pix_comp[old_pix] = roots
        uroots, inv = np.unique(roots, return_inverse=True)
        n_old = uroots.size
        n_nodes = m + n_old
        src = np.concatenate([e_src, old_src]).astype(idt, copy=False)
        dst = np.concatenate([e_dst, m + inv.ravel()]).astype(idt, copy=False)
        del e_src, e_dst, old_src, old_pix, roots, inv
        graph = coo_matrix(
            (np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes)
        ).tocsr()
        del src, dst
        ncc, lab = connected_components(graph, directed=False)
        del graph
        self._merge(new, lab[:m], lab[m:], uroots, ncc)

    def _merge(self, new: np.ndarray, lab_new: np.ndarray, lab_old: np.ndarray,
               uroots: np.ndarray, ncc: int) -> None:
        """Record the ``ncc`` regions found: the entering pixels and the old regions
        ``uroots`` they joined point to them; keep the largest live region."""
        forest, idt, n_old = self.forest, self.idt, uroots.size
        forest.reserve(ncc)
        ids = forest.n + np.arange(ncc, dtype=idt)
        size = np.bincount(lab_new, minlength=ncc).astype(np.int64)
        if n_old:
            size += np.bincount(lab_old, weights=forest.size[uroots],
                                minlength=ncc).astype(np.int64)
        first = np.full(ncc, self.N, dtype=np.int64)
        np.minimum.at(first, lab_new, new)
        if n_old:
            np.minimum.at(first, lab_old, forest.first[uroots])
            forest.parent[uroots] = ids[lab_old]
            self.alive_first[forest.first[uroots]] = False
        forest.parent[ids] = ids
        forest.size[ids] = size
        forest.first[ids] = first
        self.alive_first[first] = True
        self.pix_comp[new] = ids[lab_new]
        forest.n += ncc
        self.n_alive += ncc - n_old

        # largest live region: the previous best if it is still live, or a new one
        # (a region that absorbed the previous best is strictly larger than it).
        j = np.lexsort((first, -size))[0]
        best = self.best
        keep = best >= 0 and forest.parent[best] == best
        if not keep or (size[j], -first[j]) > (forest.size[best], -forest.first[best]):
            self.best = int(ids[j])

    def largest(self) -> tuple[int, int]:
        """Area and skimage label of the largest live region (``0, 0`` if none)."""
        if not self.n_alive:
            return 0, 0
        first = self.forest.first[self.best]
        return int(self.forest.size[self.best]), 1 + int(np.count_nonzero(self.alive_first[:first]))


def _height_scan(levels: np.ndarray, n_heights: int, step_pixels: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number of regions, largest area and its label for every height, in one sweep.

    Parameters
    ----------
    levels : ndarray of int, shape (H, W)
        Pixel levels from :func:`_height_levels`; pixel ``p`` is foreground at height
        index ``k`` when ``levels[p] > k``.
    n_heights : int
        Number of heights.
    step_pixels : int, optional
        Entering pixels handled per step (default :data:`SLICE_PIXELS`); bounds the
        temporaries. The result does not depend on it.

    Returns
    -------
    n_regions, largest_areas, largest_labels : ndarray of int64, shape (n_heights,)
        For height ``k``: the number of 4-connected regions of ``levels > k``, the area
        (pixels) of the largest one and the label :func:`skimage.measure.label` gives it
        (labels follow the raster order of each region's first pixel; ties in area go to
        the smaller label). ``0, 0, 0`` where the foreground is empty.

    Notes
    -----
    Heights are visited from the top down. At height ``k`` the pixels of level ``k + 1``
    enter, in raster order and in steps of at most ``step_pixels``; the regions they form
    with each other and with the regions already present (including those of earlier
    steps of the same level) are found with
    :func:`scipy.sparse.csgraph.connected_components` on a small graph whose nodes are
    the entering pixels and the existing regions they touch. Existing regions are kept in
    a union-find forest (merged regions point to the region that absorbed them). Every
    pixel is handled once, when it enters, so the sweep costs O(H W) plus O(n_heights)
    small calls, instead of labelling the whole map ``n_heights`` times. Memory: the
    levels, 4 bytes of component per pixel, 1 byte of "first pixel" flag, the forest,
    and the temporaries of one step.
    """
    sweep = _Sweep(levels)
    step = int(step_pixels or SLICE_PIXELS)
    n_regions = np.zeros(n_heights, dtype=np.int64)
    largest_areas = np.zeros(n_heights, dtype=np.int64)
    largest_labels = np.zeros(n_heights, dtype=np.int64)
    top = int(sweep.lf.max()) if sweep.N else 0
    for k in range(n_heights - 1, -1, -1):
        lvl = k + 1
        level_pixels = np.flatnonzero(sweep.lf == lvl) if lvl <= top else np.zeros(0, np.int64)
        for s0 in range(0, level_pixels.size, step):
            sweep.enter(level_pixels[s0 : s0 + step].astype(sweep.idt), lvl)
        n_regions[k] = sweep.n_alive
        largest_areas[k], largest_labels[k] = sweep.largest()
    return n_regions, largest_areas, largest_labels
