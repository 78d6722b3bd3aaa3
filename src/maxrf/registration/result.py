"""The :class:`Registration` result, its quality verdict and its datastack layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maxrf.errors import LayerMissingError, ParameterError
from maxrf.registration import homography as hg

__all__ = ["LAYER", "Registration", "read_registration", "write_registration"]

#: name of the datastack layer
LAYER = "registration"


@dataclass
class Registration:
    """A scan registered onto a photograph.

    Attributes
    ----------
    matrix : numpy.ndarray
        ``(3, 3)`` homography scan pixel ``(col, row, 1)`` -> photo pixel ``(x, y, w)``
        (original photo resolution, pixel centres at integers).
    method : str
        ``'auto'`` (mutual information), ``'points'`` (control points) or
        ``'points+auto'`` (automatic refinement started from the points).
    photo_path : str
    photo_sha256 : str
    photo_size : tuple of int
        ``(width, height)`` (pixels).
    scan_shape : tuple of int
        ``(H, W)`` (pixels).
    quality : str
        ``'good'``, ``'doubtful'`` or ``'failed'``.
    checks : dict
        Each check's value, threshold and outcome (the evidence of ``quality``).
    rms_px : float
        Residual RMS (photo pixels): of the control points (``'points'``), or of the
        local re-registrations of windows over the scan (their shifts) (``'auto'``).
    residuals : list of float
        The individual residuals (photo pixels).
    metric : float
        Mutual information (nats) of scan image and photo under ``matrix``.
    overlap : float
        Share of the scan's pixels that fall inside the photo.
    scale : float
        Photo pixels per scan pixel at the scan centre.
    points : numpy.ndarray or None
        ``(N, 4)`` control points ``xrf_col, xrf_row, photo_x, photo_y``.
    inliers : list of bool or None
        Control points kept by RANSAC.
    scan_image : str
        What was registered (``'sum'``, ``'Fe'``, ``'Fe+Pb'``...).
    """

    matrix: np.ndarray
    method: str
    photo_path: str
    photo_sha256: str
    photo_size: tuple[int, int]
    scan_shape: tuple[int, int]
    quality: str
    checks: dict[str, Any] = field(default_factory=dict)
    rms_px: float = float("nan")
    residuals: list[float] = field(default_factory=list)
    metric: float = float("nan")
    overlap: float = float("nan")
    scale: float = float("nan")
    points: np.ndarray | None = None
    inliers: list[bool] | None = None
    scan_image: str = "sum"

    @property
    def ok(self) -> bool:
        """True unless the verdict is ``'failed'``."""
        return self.quality != "failed"

    def to_photo(self, colrow: np.ndarray) -> np.ndarray:
        """Scan ``(col, row)`` points -> photo ``(x, y)``."""
        return hg.apply(self.matrix, colrow)

    def to_scan(self, xy: np.ndarray) -> np.ndarray:
        """Photo ``(x, y)`` points -> scan ``(col, row)`` (not rounded)."""
        return hg.apply(np.linalg.inv(self.matrix), xy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (what ``maxrf register --json`` prints and the layer stores)."""
        return {
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "method": self.method, "quality": self.quality,
            "rms_px": _num(self.rms_px), "residuals": [_num(r) for r in self.residuals],
            "metric": _num(self.metric), "overlap": _num(self.overlap), "scale": _num(self.scale),
            "checks": self.checks, "photo_path": self.photo_path, "photo_sha256": self.photo_sha256,
            "photo_size": [int(v) for v in self.photo_size],
            "scan_shape": [int(v) for v in self.scan_shape],
            "inliers": self.inliers, "scan_image": self.scan_image,
            "convention": "matrix maps scan (col, row, 1) to photo (x, y, w); pixel centres at integers",
        }


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def write_registration(ds: Any, reg: Registration) -> None:
    """Write (or replace) the ``registration`` layer of a datastack."""
    arrays = {"matrix": np.asarray(reg.matrix, dtype=np.float64)}
    if reg.points is not None:
        arrays["points"] = np.asarray(reg.points, dtype=np.float64)
    ds.write_layer(LAYER, arrays, reg.to_dict())


def read_registration(ds: Any) -> Registration:
    """The stored registration of a datastack.

    Raises
    ------
    LayerMissingError
        If the scan has not been registered (run ``maxrf register``).
    """
    if LAYER not in ds.layers:
        raise LayerMissingError("the scan is not registered to a photograph: run 'maxrf register'", ds.path)
    layer = ds.read(LAYER)
    a = layer.attrs
    pts = layer.get("points")
    try:
        return Registration(
            matrix=np.asarray(layer["matrix"], dtype=float), method=a["method"],
            photo_path=a["photo_path"], photo_sha256=a["photo_sha256"],
            photo_size=tuple(a["photo_size"]), scan_shape=tuple(a["scan_shape"]),
            quality=a["quality"], checks=a.get("checks", {}),
            rms_px=_nan(a.get("rms_px")), residuals=[_nan(r) for r in a.get("residuals", [])],
            metric=_nan(a.get("metric")), overlap=_nan(a.get("overlap")), scale=_nan(a.get("scale")),
            points=None if pts is None else np.asarray(pts), inliers=a.get("inliers"),
            scan_image=a.get("scan_image", "sum"),
        )
    except KeyError as exc:
        raise ParameterError(f"{ds.path}: registration layer lacks {exc}") from None


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)
