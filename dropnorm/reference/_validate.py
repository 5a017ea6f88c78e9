"""Parameter checks shared by the reference functions (clauses *-API-*)."""
from __future__ import annotations

import math
import numbers

import numpy as np


def probability(name: str, value) -> float:
    """Return `value` as a float in [0, 1], else raise naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def positive(name: str, value) -> float:
    """Return `value` as a finite float > 0, else raise naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def momentum(value) -> float | None:
    """momentum is None (cumulative average) or a probability."""
    return None if value is None else probability("momentum", value)


def float_array(name: str, value) -> np.ndarray:
    """Return `value` as a float64 array; reject non-numeric dtypes."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def channel_input(x: np.ndarray, num_features: int | None = None, *, min_ndim: int = 2) -> None:
    """x is (N, C, *spatial); C matches num_features when given."""
    if x.ndim < min_ndim:
        raise ValueError(f"x must have at least {min_ndim} dimensions (N, C, ...), got shape {x.shape}")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(f"x has {x.shape[1]} channels (shape {x.shape}) but num_features={num_features}")


def per_channel(name: str, value, channels: int) -> np.ndarray:
    """A per-channel vector of length `channels`."""
    arr = float_array(name, value)
    if arr.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},), got {arr.shape}")
    return arr


def same_shape(name: str, value, shape: tuple) -> np.ndarray:
    arr = float_array(name, value)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr
