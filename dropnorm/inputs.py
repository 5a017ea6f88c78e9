"""Test inputs generated from a seed: values exactly representable in the dtype under test.

Hypothesis draws the shape, the dtype and a seed; the values themselves come
from a numpy Generator seeded with it (large arrays are not drawn element by
element by hypothesis: it would be slow and trip its data_too_large check).
"""
from __future__ import annotations

import numpy as np

from dropnorm.dtypes import round_to


def nonzero(seed: int, shape, dtype: str, lo: float = 0.5, hi: float = 2.0) -> np.ndarray:
    """Values with |x| in [lo, hi) and random signs: none is zero, so a dropped
    element (0) is told apart from a kept one exactly, and nothing under- or overflows."""
    rng = np.random.default_rng(seed)
    mag = rng.uniform(lo, hi, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    out = round_to(sign * mag, dtype)
    assert np.all(out != 0)  # sanity check: the mask read-back relies on it
    return out


def channels(seed: int, shape, dtype: str, *, offset: float = 1.0, spread: float = 1.0) -> np.ndarray:
    """(N, C, *spatial) values with a random location and scale per channel.

    Channel c has mean ~ offset * U(-1, 1) and standard deviation ~ spread *
    10^U(-1, 1), so channels differ (a statistic over the wrong axis shows).
    """
    rng = np.random.default_rng(seed)
    c = shape[1]
    loc = offset * rng.uniform(-1, 1, size=c)
    scale = spread * 10.0 ** rng.uniform(-1, 1, size=c)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    return round_to(loc.reshape(bshape) + scale.reshape(bshape) * rng.standard_normal(size=shape), dtype)


def vector(seed: int, c: int, dtype: str, *, loc: float = 0.0, scale: float = 1.0, positive: bool = False):
    """A per-channel vector (gamma, beta, running statistics)."""
    rng = np.random.default_rng(seed)
    v = loc + scale * rng.standard_normal(size=c)
    if positive:
        v = np.abs(v) + 0.05
    return round_to(v, dtype)
