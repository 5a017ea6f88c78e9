"""Inverted dropout, element-wise (Dropout) and channel-wise (Dropout2d).

Clauses DO-* and D2-* of spec/clauses.toml. A mask z holds 1 for kept and 0
for dropped units; kept values are scaled by 1/(1-p) at training time so that
E[y] = x and eval mode is the identity.
"""
from __future__ import annotations

import numpy as np

from reference import _validate as v


def sample_mask(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """Bernoulli(1 - p) keep mask of `shape` (DO-TRAIN-02..05): i.i.d. draws."""
    p = v.probability("p", p)
    return (rng.random(shape) >= p).astype(np.float64)


def sample_channel_mask(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """One Bernoulli(1 - p) draw per (sample, channel), broadcast over space (D2-TRAIN-01)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"channel dropout needs (N, C, ...) input, got shape {shape}")
    mask = sample_mask(rng, shape[:2], p)
    return mask.reshape(shape[:2] + (1,) * (len(shape) - 2))


def _scale(p: float) -> float:
    # p = 1 drops everything; define the scale as 0 so no 0 * inf appears (DO-P1-01).
    return 0.0 if p == 1.0 else 1.0 / (1.0 - p)


def dropout_forward(x, mask, p: float, training: bool = True) -> np.ndarray:
    """y = x * z / (1 - p) in training (DO-TRAIN-01); y = x in eval (DO-EVAL-01).

    Dropped entries are 0 even for non-finite x (DO-NONFINITE-01).
    """
    p = v.probability("p", p)
    x = v.float_array("x", x)
    if not training:
        return x.copy()
    mask = np.broadcast_to(v.float_array("mask", mask), x.shape)
    return np.where(mask != 0, x * _scale(p), 0.0)


def dropout_backward(dy, mask, p: float, training: bool = True) -> np.ndarray:
    """dx = dy * z / (1 - p) in training, dy in eval (DO-GRAD-01, D2-GRAD-01)."""
    return dropout_forward(dy, mask, p, training)


channel_dropout_forward = dropout_forward
channel_dropout_backward = dropout_backward
