"""Test inputs generated from a seed: values exactly representable in the dtype under test.

Hypothesis draws the shape, the dtype and a seed; the values themselves come
from a numpy Generator seeded with it (large arrays are not drawn element by
element by hypothesis: it would be slow and trip its data_too_large check).
"""
from __future__ import annotations

import numpy as np

from dropnorm.spec.dtypes import round_to


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


# The whole input domain of BatchNorm (issue 22): exact zeros (+0.0 and -0.0, post-ReLU channels,
# whole zero channels), repeated values, a trend along the batch (sorted or grouped batches), and
# per-channel magnitudes 2^e far from 1. MAGNITUDE_EXP[dtype] bounds |e| so that every value, every
# square and every sum of n <= 2^16 squares a correct layer forms stays finite and normal in the
# working precision, and the eval output stays finite in the dtype:
#   float64: |x| <= 64 * 2^60 = 2^66, n x^2 <= 2^148 << 2^1023; |x| >= tiny * 2^-60, squares >= 2^-300.
#   float32, bfloat16 (float32 range, float32 working precision): |x| <= 2^36, n x^2 <= 2^88 < 2^127.
#   (|x| <= 64 before scaling: channels() at offset 3 has |loc| <= 3, scale <= 10, and the trend adds <= 4)
#   float16 (range 65504): |x| <= 64 * 2^4 = 2^10; the eval output |x| |gamma|/sqrt(rv + eps) with
#   |gamma| <= 6, rv >= 0.05 (bn_setup's draws) is <= 2^10 * 27 < 2^15 < 65504.
# Where a deviation x - mu is tiny its square may underflow: that adds at most n * 2^-150 <= 2^-134
# (float32; 2^-1059 in float64) to the variance, whose effect on xhat, |xhat| 2^-134 / (2 eps) with
# eps >= 1e-6, is below u_w^2 |xhat| and inside SAFETY's second-order allowance (dropnorm/spec/tolerances.py).
MAGNITUDE_EXP = {"float64": 60, "float32": 30, "bfloat16": 30, "float16": 4}
ZERO_KINDS = ("none", "relu", "scattered", "zero-channel")


def domain(seed: int, shape, dtype: str, *, zeros: str = "none", repeated: bool = False, trend: bool = False,
           magnitude: int = 0, offset: float = 1.0, spread: float = 1.0) -> np.ndarray:
    """channels() values carried into the whole domain, each feature drawn per channel from `seed`:

    zeros: "relu" makes a random half of the channels (at least one) post-ReLU channels relu(x - t_c)
    (20% to 80% exact zeros, a non-zero mean), "scattered" a random fraction of the
    elements, "zero-channel" every value of one channel; each zero is +0.0 or -0.0 at random.
    repeated: values on a grid of 5 levels per channel (many exact repeats).
    trend: a per-channel shift that grows along the batch axis (a sorted or grouped batch).
    magnitude: channel c is scaled by 2^e_c, e_c uniform in [-|magnitude|, |magnitude|] (|magnitude|
    at most MAGNITUDE_EXP[dtype]).
    The result is rounded to dtype once, at the end: the reference reads the rounded values."""
    if abs(magnitude) > MAGNITUDE_EXP[dtype]:
        raise ValueError(f"magnitude 2^{magnitude} is outside the range kept finite for {dtype}")
    if zeros not in ZERO_KINDS:
        raise ValueError(f"zeros must be one of {ZERO_KINDS}, got {zeros!r}")
    x = channels(seed, shape, "float64", offset=offset, spread=spread)
    rng = np.random.default_rng([seed, 22])
    c, nd = shape[1], len(shape)

    def per_channel(v):
        return np.asarray(v).reshape((1, c) + (1,) * (nd - 2))

    if trend and shape[0] > 1:
        ramp = np.linspace(-1.0, 1.0, shape[0]).reshape((-1, 1) + (1,) * (nd - 2))
        x = x + ramp * per_channel(offset * rng.uniform(-1, 1, size=c) + spread)
    if repeated:
        # 5 levels around the channel's mean, one standard deviation apart
        axes = (0,) + tuple(range(2, nd))
        mean = x.mean(axis=axes, keepdims=True)
        step = np.maximum(x.std(axis=axes, keepdims=True), 1e-3)
        x = mean + step * np.clip(np.round((x - mean) / step), -2, 2)
    zero = np.where(rng.random(size=shape) < 0.5, -0.0, 0.0)
    if zeros == "relu":  # relu(x - t_c), t_c the channel's q_c-quantile, q_c in [0.2, 0.8]: that share is 0
        chosen = rng.random(size=c) < 0.5
        chosen[rng.integers(c)] = True
        axes = (0,) + tuple(range(2, nd))
        t = per_channel(np.diagonal(np.quantile(x, rng.uniform(0.2, 0.8, size=c), axis=axes)))  # (q_c, c) -> c
        x = np.where(per_channel(chosen), np.where(x - t <= 0, zero, x - t), x)
    elif zeros == "scattered":
        x = np.where(rng.random(size=shape) < rng.uniform(0.1, 0.9), zero, x)
    elif zeros == "zero-channel":
        x = np.where(per_channel(np.arange(c) == rng.integers(c)), zero, x)
    if magnitude:
        x = x * per_channel(2.0 ** rng.integers(-abs(magnitude), abs(magnitude) + 1, size=c))
    return round_to(x, dtype)
