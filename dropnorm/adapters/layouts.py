"""Memory layouts as numpy views: the same logical values, different strides."""
from __future__ import annotations

import numpy as np


def storage_permutation(ndim: int, layout: str) -> tuple[int, ...] | None:
    """The axis order in which values are laid out in memory, or None for strided."""
    if layout == "contiguous":
        return tuple(range(ndim))
    if layout == "transposed":
        return tuple(reversed(range(ndim)))
    if layout == "channels_last":
        if ndim < 3:
            raise ValueError(f"channels_last needs (N, C, *spatial) with spatial dims, got ndim={ndim}")
        return (0,) + tuple(range(2, ndim)) + (1,)
    if layout == "strided":
        return None
    raise ValueError(f"unknown layout {layout!r}")


def numpy_view(x: np.ndarray, layout: str) -> np.ndarray:
    """A view of a fresh buffer holding `x`'s values with `layout`'s strides."""
    perm = storage_permutation(x.ndim, layout)
    if perm is None:  # every other element of a buffer twice as long in the last axis
        if x.ndim == 0:
            return x.copy()
        buf = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        buf[..., ::2] = x
        return buf[..., ::2]
    inv = np.argsort(perm)
    return np.ascontiguousarray(x.transpose(perm)).transpose(inv)
