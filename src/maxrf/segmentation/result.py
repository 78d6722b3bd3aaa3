"""The result of a segmentation: class image, particle table, thresholds and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BACKGROUND, EXTENDED, PARTICLE = 0, 1, 2
CLASS_NAMES: dict[int, str] = {BACKGROUND: "background", EXTENDED: "extended", PARTICLE: "particle"}


@dataclass
class Segmentation:
    """Result of :func:`segment_map`.

    Attributes
    ----------
    classes : ndarray of uint8, shape (H, W)
        0 background, 1 extended (strokes), 2 particles.
    labels : ndarray of int32, shape (H, W)
        Particle labels ``1..n`` (0 elsewhere); label ``i + 1`` is row ``i`` of ``table``.
    table : dict of str to ndarray
        One row per particle: ``label``, ``row``, ``col`` (geometric centroid),
        ``row_weighted``, ``col_weighted`` (centroid weighted by the excess over the
        expected level), ``area`` (pixels), ``peak`` (map maximum), ``excess`` (peak above
        the expected level, map units), ``contrast`` (that excess in noise units),
        ``significance`` (summed excess over its noise), ``on_stroke`` (bool), then one
        column per other element map (its mean over the particle).
    thresholds : dict
        Every threshold used, with the reason for its value.
    evidence : dict
        Noise model, candidates seen and rejected by reason, class fractions.
    verdict : str
        ``'ok'`` or ``'doubtful'``; ``warnings`` says why.
    warnings : list of str
    element : str or None
    """

    classes: np.ndarray
    labels: np.ndarray
    table: dict[str, np.ndarray]
    thresholds: dict[str, Any]
    evidence: dict[str, Any]
    verdict: str = "ok"
    warnings: list[str] = field(default_factory=list)
    element: str | None = None

    @property
    def stroke_mask(self) -> np.ndarray:
        """Boolean mask (H, W) of the extended class (strokes)."""
        return self.classes == EXTENDED

    @property
    def particle_mask(self) -> np.ndarray:
        """Boolean mask (H, W) of the particle class."""
        return self.classes == PARTICLE

    @property
    def n_particles(self) -> int:
        """Number of particles."""
        return int(self.table["label"].size)

    @property
    def centroids_rc(self) -> np.ndarray:
        """Intensity-weighted particle centroids ``[row, col]`` (pixels), shape (n, 2)."""
        return np.c_[self.table["row_weighted"], self.table["col_weighted"]].reshape(-1, 2)

    @property
    def radii(self) -> np.ndarray:
        """Radius (pixels) of the disc with each particle's area, for circling them."""
        return np.sqrt(np.asarray(self.table["area"], dtype=float) / np.pi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: counts, thresholds and why, evidence, verdict, the table."""
        n = self.n_particles
        rows = [{k: _py(v[i]) for k, v in self.table.items()} for i in range(n)]
        return {
            "element": self.element,
            "shape": list(self.classes.shape),
            "n_particles": n,
            "stroke_fraction": float(np.mean(self.classes == EXTENDED)),
            "classes": dict(CLASS_NAMES),
            "thresholds": self.thresholds,
            "evidence": self.evidence,
            "verdict": self.verdict,
            "warnings": list(self.warnings),
            "table": rows,
        }


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


