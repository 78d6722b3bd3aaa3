"""Checks of the arrays handed to public functions: one message per problem, naming the argument."""

from __future__ import annotations

import numpy as np

from maxrf.errors import ParameterError
from maxrf.types import ArrayLike

__all__ = ["as_map"]


def as_map(values: ArrayLike, name: str, *, min_side: int = 1, purpose: str = "use") -> np.ndarray:
    """``values`` as a float64 2-D map (rows, cols); NaN allowed (no data), inf not.

    Parameters
    ----------
    values : array_like
        The map.
    name : str
        The argument's name, for the messages.
    min_side : int
        Fewest pixels a side.
    purpose : str
        What the map is for, in the "too small to ..." message.

    Raises
    ------
    ParameterError
        Not numeric, not 2-D, empty or smaller than ``min_side``, infinite values, only NaN.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a 2-D numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array (rows, cols), got shape {arr.shape}")
    if arr.size == 0 and min_side <= 1:
        raise ParameterError(f"{name} is empty (shape {arr.shape})")
    if min(arr.shape) < min_side:
        raise ParameterError(f"{name} is too small to {purpose}: shape {arr.shape} "
                             f"(>= {min_side} x {min_side})")
    if np.isinf(arr).any():
        raise ParameterError(f"{name} contains infinite values")
    if np.isnan(arr).all():
        raise ParameterError(f"{name} contains only NaN values")
    return arr
