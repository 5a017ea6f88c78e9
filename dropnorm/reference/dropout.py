"""Inverted dropout, element-wise (Dropout) and channel-wise (Dropout1d, 2d, 3d), and alpha dropout.

Clauses DO-*, D2-* and AD-* of spec/clauses.toml. A mask z holds 1 for kept and 0
for dropped units; kept values are scaled by 1/(1-p) at training time so that
E[y] = x and eval mode is the identity.
"""
from __future__ import annotations

import numpy as np

from dropnorm.reference import _validate as v


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


# ------------------------------------------------------------------ channel dropout, no-batch form
def sample_channel_mask_nobatch(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """One Bernoulli(1 - p) draw per channel c of a no-batch (C, *spatial) input (D2-RANK-01):
    the input is one sample, so it is sample_channel_mask of (1, C, *spatial) without the batch axis."""
    shape = tuple(shape)
    if len(shape) < 1:
        raise ValueError(f"no-batch channel dropout needs (C, ...) input, got shape {shape}")
    return sample_channel_mask(rng, (1,) + shape, p)[0]


# ------------------------------------------------------------------ alpha dropout (AD-*)
# SELU's negative saturation value alpha' = -lambda * alpha ([SNN17]; ATen Dropout.cpp writes
# alpha = 1.7580993408473766 and subtracts it)
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
ALPHA_PRIME = -1.7580993408473766


def alpha_dropout_constants(p: float) -> tuple[float, float]:
    """(a, b) of AD-TRAIN-01: a = (q (1 + alpha'^2 p))^(-1/2), b = -a alpha' p, q = 1 - p.
    They make q b + p (a alpha' + b) = 0 and a^2 (q + p q alpha'^2) = 1: mean 0 and variance 1
    are kept for inputs of mean 0 and variance 1. p = 1 has no finite a (AD-EDGE-01)."""
    p = v.probability("p", p)
    if p == 1.0:
        raise ValueError("alpha dropout constants are undefined at p = 1 (a is infinite); the output is 0")
    a = 1.0 / np.sqrt((1.0 - p) * (1.0 + ALPHA_PRIME * ALPHA_PRIME * p))
    return float(a), float(-a * ALPHA_PRIME * p)


def alpha_dropout_forward(x, mask, p: float, training: bool = True) -> np.ndarray:
    """y = a (x z + alpha' (1 - z)) + b in training (AD-TRAIN-01); x in eval (AD-EVAL-01);
    x at p = 0 and zeros at p = 1 (AD-EDGE-01). The mask broadcasts (FeatureAlphaDropout: (N, C, 1, ...))."""
    p = v.probability("p", p)
    x = v.float_array("x", x)
    if not training or p == 0.0:
        return x.copy()
    if p == 1.0:
        return np.zeros(x.shape)
    mask = np.broadcast_to(v.float_array("mask", mask), x.shape)
    a, b = alpha_dropout_constants(p)
    return np.where(mask != 0, a * x + b, a * ALPHA_PRIME + b)


def alpha_dropout_backward(dy, mask, p: float, training: bool = True) -> np.ndarray:
    """dx = a z dy in training (AD-GRAD-01), dy in eval and at p = 0, 0 at p = 1."""
    p = v.probability("p", p)
    dy = v.float_array("dy", dy)
    if not training or p == 0.0:
        return dy.copy()
    if p == 1.0:
        return np.zeros(dy.shape)
    a, _ = alpha_dropout_constants(p)
    return np.where(np.broadcast_to(v.float_array("mask", mask), dy.shape) != 0, a * dy, 0.0)
