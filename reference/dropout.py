"""Inverted dropout, element-wise (Dropout) and channel-wise (Dropout2d).

Clauses DO-* and D2-* of spec/clauses.toml. A mask z holds 1 for kept and 0
for dropped units; kept values are scaled by 1/(1-p) at training time so that
E[y] = x and eval mode is the identity.
"""
from __future__ import annotations

import numpy as np

from reference import _validate as v


def mask_shape(shape, shared_axes=()) -> tuple[int, ...]:
    """The shape of the draw: 1 on every axis that shares one draw.

    Frameworks name the same thing two ways (spec/conventions.toml): Keras and
    TensorFlow pass this shape (noise_shape); Flax passes the shared axes
    (broadcast_dims). Dropout shares none; Dropout2d shares the spatial axes.
    """
    shape = tuple(shape)
    shared = {a % len(shape) for a in shared_axes} if shape else set()
    return tuple(1 if i in shared else s for i, s in enumerate(shape))


def shared_axes_of(noise_shape, shape) -> tuple[int, ...]:
    """Keras/TF noise_shape -> the axes that share one draw (Flax's broadcast_dims).
    None entries of noise_shape take the input's size (not shared)."""
    return tuple(i for i, (k, s) in enumerate(zip(noise_shape, shape)) if k is not None and k == 1 and s != 1)


def sample_mask(rng: np.random.Generator, shape, p: float, shared_axes=()) -> np.ndarray:
    """Bernoulli(1 - p) keep mask of `shape` (DO-TRAIN-02..05): i.i.d. draws,
    one per position of mask_shape(shape, shared_axes), broadcast over the shared axes."""
    p = v.probability("p", p)
    draw = (rng.random(mask_shape(shape, shared_axes)) >= p).astype(np.float64)
    return np.broadcast_to(draw, tuple(shape)).copy() if shared_axes else draw


def sample_channel_mask(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """One Bernoulli(1 - p) draw per (sample, channel), shared over space (D2-TRAIN-01):
    Dropout2d is Dropout with shared_axes = the spatial axes."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"channel dropout needs (N, C, ...) input, got shape {shape}")
    return sample_mask(rng, shape[:2], p).reshape(shape[:2] + (1,) * (len(shape) - 2))


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
    if p == 1.0:  # every element is dropped (DO-P1-01), whatever the mask says: no 0 * inf = NaN
        return np.zeros(x.shape)
    return np.where(mask != 0, x * _scale(p), 0.0)


def dropout_backward(dy, mask, p: float, training: bool = True) -> np.ndarray:
    """dx = dy * z / (1 - p) in training, dy in eval (DO-GRAD-01, D2-GRAD-01)."""
    return dropout_forward(dy, mask, p, training)


channel_dropout_forward = dropout_forward
channel_dropout_backward = dropout_backward
