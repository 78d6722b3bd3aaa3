"""The one pass over the cube: abundances, reconstruction, classes, accumulated sums."""

from __future__ import annotations

from typing import Any

import numpy as np

from maxrf import engine
from maxrf.decomposition.classes import Classifier
from maxrf.decomposition.sample import bin_counts
from maxrf.engine import Block
from maxrf.solve import nnls_gram

CHI2_STEP, CHI2_BINS = 0.02, 1000
#: bytes of float32 spectra converted at a time in the full-resolution products
_SLICE_BYTES = 4 * 2**20


class ApplyComponents(engine.Reduction):
    """Per block: abundances (NNLS with fixed components), reduced chi-square, class; and
    the normal equations of the full-resolution components and the class sums."""

    def __init__(self, edges: np.ndarray, hb: np.ndarray, weights: np.ndarray,
                 classifier: Classifier | None = None):
        self.edges, self.hb, self.wt = edges, hb, weights
        self.hbw = np.ascontiguousarray((hb * weights).T)  # (nb, k): b = xb @ hbw
        self.gram = (hb * weights) @ hb.T
        self.inv = np.linalg.pinv(self.gram)
        self.classifier = classifier
        # the NNLS free-set patterns' inverses, the same for every block: computed once per
        # process (a few dozen patterns of k columns; shared by the threads, a lost race
        # only computes one twice)
        self.patterns: dict = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "patterns": {}}

    def block(self, data: np.ndarray, where: Block) -> dict[str, np.ndarray]:
        r, c, n = data.shape
        flat = data.reshape(r * c, n)
        xb = bin_counts(flat, self.edges)
        b = (xb @ self.hbw).astype(np.float64)
        a, _ = nnls_gram(self.gram, b, b @ self.inv, cache=self.patterns)
        a = np.maximum(a, 0.0)
        fit = (a @ self.hb).astype(np.float32)
        chi2 = np.sum((xb - fit) ** 2 / np.maximum(fit, 1.0), axis=1) / xb.shape[1]
        k = a.shape[1]
        maps = np.concatenate([a.T, chi2[None]]).reshape(k + 1, r, c).astype(np.float32)
        hist = np.bincount(np.minimum((chi2 / CHI2_STEP).astype(np.int64), CHI2_BINS - 1),
                           minlength=CHI2_BINS)
        out = {"maps": maps, "ata": a.T @ a, "chi2_hist": hist}
        weights = [a.T.astype(np.float32)]  # rows: abundances, then one-hot classes
        if self.classifier is not None:
            lab = self.classifier.predict(a)
            nc = self.classifier.n_classes
            onehot = np.zeros((nc, lab.size), dtype=np.float32)
            onehot[lab, np.arange(lab.size)] = 1.0
            weights.append(onehot)
            out["labels"] = lab.reshape(r, c).astype(np.int16)
            out["count"] = np.bincount(lab, minlength=nc)
        # the full-resolution normal equations and the class sums in one product, over
        # slices of pixels so that the float32 copy stays small (and in cache)
        wm = np.concatenate(weights)
        prod = np.zeros((wm.shape[0], n), dtype=np.float64)
        step = max(16, _SLICE_BYTES // (4 * n))
        for i in range(0, flat.shape[0], step):
            prod += wm[:, i:i + step] @ flat[i:i + step].astype(np.float32, copy=False)
        out["atx"] = prod[:k]
        if self.classifier is not None:
            out["sums"] = prod[k:]
        return out


class Collector:
    """Caller-side sink of :class:`ApplyComponents`: maps into memory (or bands to the store), the
    small accumulators summed."""

    def __init__(self, shape: tuple[int, int], k: int, writer: Any = None, rows: int = 0):
        self.shape, self.k = shape, k
        self.acc: dict[str, Any] = {}
        if writer is None:
            self.maps = np.zeros((k + 1, *shape), dtype=np.float32)
            self.labels = np.zeros(shape, dtype=np.int16)
            self.bands = None
        else:
            self.maps = self.labels = None
            self.bands = engine.BandedMaps(shape, rows, writer)

    def add(self, where: Block, part: dict[str, np.ndarray]) -> None:
        if self.bands is not None:
            labels = part.get("labels")
            extra = labels[None].astype(np.float32) if labels is not None else np.zeros(
                (1, *part["maps"].shape[1:]), np.float32)
            self.bands.add(where, np.concatenate([part["maps"], extra]))
        else:
            self.maps[:, where.rows, where.cols] = part["maps"]
            if "labels" in part:
                self.labels[where.rows, where.cols] = part["labels"]
        for key in ("ata", "atx", "sums", "count", "chi2_hist"):
            if key in part:
                self.acc[key] = self.acc[key] + part[key] if key in self.acc else part[key].copy()

    def finish(self) -> Collector:
        if self.bands is not None:
            self.bands.finish()
        return self


