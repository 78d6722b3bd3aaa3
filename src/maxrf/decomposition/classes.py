"""Material classes of pixels: a Gaussian mixture on their component abundances."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from maxrf.decomposition.mixture import GaussianMixture
from maxrf.decomposition.nmf import one_blas_thread

_MAX_CLASS_SAMPLE = 4000
#: Mixture components closer than this many standard deviations are one material class.
CLASS_SEPARATION = 3.0


def class_features(ab: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(ab, 0.0)) / scale


class Classifier:
    """A Gaussian mixture on variance-stabilised abundances whose overlapping components
    are merged into one class (picklable: it runs in the engine's blocks)."""

    def __init__(self, gmm: GaussianMixture, scale: np.ndarray, mapping: np.ndarray):
        self.gmm, self.scale, self.mapping = gmm, scale, mapping

    @property
    def n_classes(self) -> int:
        return int(self.mapping.max()) + 1

    def predict(self, ab: np.ndarray) -> np.ndarray:
        return self.mapping[self.gmm.predict(class_features(ab, self.scale))]

    def centres(self) -> np.ndarray:
        """``(n_classes, k)`` mean abundances (counts) of each class."""
        w = self.gmm.weights_
        out = np.zeros((self.n_classes, self.gmm.means_.shape[1]))
        for c in range(self.n_classes):
            sel = self.mapping == c
            out[c] = (w[sel, None] * (self.gmm.means_[sel] * self.scale) ** 2).sum(0) / w[sel].sum()
        return out


def merge_overlapping(gmm: Any, separation: float) -> np.ndarray:
    """Class of each mixture component: components closer than ``separation`` pooled
    standard deviations along the line joining their means are one class (a skewed
    cluster, e.g. abundances piled up at zero, takes several Gaussians)."""
    n = gmm.n_components
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(n):
        for b in range(a + 1, n):
            d = gmm.means_[b] - gmm.means_[a]
            dist = float(np.linalg.norm(d))
            u = d / max(dist, 1e-12)
            spread = math.sqrt(max(float(u @ (gmm.covariances_[a] + gmm.covariances_[b]) @ u) / 2, 1e-12))
            if dist < separation * spread:
                parent[root(b)] = root(a)
    roots = [root(i) for i in range(n)]
    _, mapping = np.unique(roots, return_inverse=True)
    return mapping.astype(np.int64)


def fit_classes(ab: np.ndarray, n_classes: int | None, max_classes: int, seed: int
                 ) -> tuple[Classifier, dict[int, float]]:
    """Material classes from sample abundances: a Gaussian mixture on sqrt-abundances (the
    counting noise then has about the same spread everywhere), its size chosen by BIC and
    overlapping components merged, unless ``n_classes`` is given."""
    scale = np.maximum(np.sqrt(np.maximum(ab, 0.0)).std(axis=0), 1e-6)
    f = class_features(ab, scale)
    if f.shape[0] > _MAX_CLASS_SAMPLE:  # BIC needs no more to tell the classes apart
        f = f[np.random.default_rng(seed).choice(f.shape[0], _MAX_CLASS_SAMPLE, replace=False)]
    tries = [n_classes] if n_classes else range(2, max(2, min(max_classes, f.shape[0] - 1)) + 1)
    best, bic = None, {}
    with one_blas_thread():
        for n in tries:
            gm = GaussianMixture(n, reg_covar=1e-3, seed=seed).fit(f)
            bic[int(n)] = float(gm.bic(f))
            if best is None or bic[int(n)] < bic[best.n_components]:
                best = gm
    mapping = (np.arange(best.n_components) if n_classes
               else merge_overlapping(best, CLASS_SEPARATION))
    return Classifier(best, scale, mapping), bic


