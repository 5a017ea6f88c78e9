"""Batch normalization over (N, C, *spatial) inputs, float64.

Clauses BN-* of spec/clauses.toml. Statistics are per channel, over every
axis but axis 1. Training normalises with the biased batch variance and eps
inside the square root. The running statistics follow a convention
(spec/conventions.toml): PyTorch's momentum weighs the new batch and its
running variance is fed the unbiased variance n/(n-1), n = N * prod(spatial);
running_update takes the other choices as arguments.
"""
from __future__ import annotations

import numpy as np

from dropnorm.reference import _validate as v


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(vec: np.ndarray, ndim: int) -> np.ndarray:
    """Shape a (C,) vector to broadcast against (N, C, *spatial)."""
    return vec.reshape((1, -1) + (1,) * (ndim - 2))


def _affine(gamma, beta, channels: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.ones(channels) if gamma is None else v.per_channel("gamma", gamma, channels)
    b = np.zeros(channels) if beta is None else v.per_channel("beta", beta, channels)
    return g, b


def batch_statistics(x) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean, biased variance and count n (two-pass, float64)."""
    x = v.float_array("x", x)
    v.channel_input(x)
    n = x.size // x.shape[1] if x.shape[1] else 0
    mean = x.mean(axis=_axes(x))
    var = ((x - _per_channel(mean, x.ndim)) ** 2).mean(axis=_axes(x))
    return mean, var, n


def batchnorm_train_forward(x, gamma=None, beta=None, eps: float = 1e-5) -> np.ndarray:
    """y = gamma (x - mu)/sqrt(var + eps) + beta with batch statistics (BN-TRAIN-01).

    gamma/beta None means affine=False (BN-AFFINE-01). n = 1 value per channel
    raises ValueError (BN-TRAIN-06).
    """
    eps = v.positive("eps", eps)
    x = v.float_array("x", x)
    v.channel_input(x)
    mean, var, n = batch_statistics(x)
    if n == 1:
        raise ValueError(f"training needs more than 1 value per channel, got input shape {x.shape}")
    g, b = _affine(gamma, beta, x.shape[1])
    xhat = (x - _per_channel(mean, x.ndim)) / np.sqrt(_per_channel(var, x.ndim) + eps)
    return _per_channel(g, x.ndim) * xhat + _per_channel(b, x.ndim)


def batchnorm_eval_forward(x, running_mean, running_var, gamma=None, beta=None,
                           eps: float = 1e-5) -> np.ndarray:
    """y = gamma (x - rm)/sqrt(rv + eps) + beta, a per-channel affine map (BN-EVAL-01)."""
    eps = v.positive("eps", eps)
    x = v.float_array("x", x)
    v.channel_input(x)
    c = x.shape[1]
    rm = v.per_channel("running_mean", running_mean, c)
    rv = v.per_channel("running_var", running_var, c)
    if np.any(rv < 0):
        raise ValueError(f"running_var must be >= 0, got min {rv.min()!r}")
    g, b = _affine(gamma, beta, c)
    scale = g / np.sqrt(rv + eps)
    return _per_channel(scale, x.ndim) * (x - _per_channel(rm, x.ndim)) + _per_channel(b, x.ndim)


def running_update(running_mean, running_var, num_batches_tracked: int, x,
                   momentum: float | None = 0.1, *, momentum_of: str = "new", variance: str = "unbiased"):
    """One training step's update of the running statistics (BN-TRAIN-02..05).

    The new-batch weight w is momentum when it weighs the new batch
    (momentum_of="new": PyTorch, TF's fused kernel) and 1 - momentum when it
    weighs the old value (momentum_of="old": ONNX, Keras, Flax); momentum=None
    is the cumulative average w = 1/t' (PyTorch). The batch variance fed in is
    unbiased, var n/(n-1) (variance="unbiased": PyTorch, TF's fused kernel), or
    the biased var itself (variance="biased": ONNX, Keras, Flax):

      t' = t + 1;  rm' = (1 - w) rm + w mu;  rv' = (1 - w) rv + w v.

    Returns (rm', rv', t'). spec/conventions.toml names each framework's choice.
    """
    if momentum_of not in ("new", "old"):
        raise ValueError(f"momentum_of must be 'new' or 'old', got {momentum_of!r}")
    if variance not in ("unbiased", "biased"):
        raise ValueError(f"variance must be 'unbiased' or 'biased', got {variance!r}")
    m = v.momentum(momentum)
    if m is None and momentum_of == "old":
        raise ValueError("momentum=None (cumulative average) is defined for momentum_of='new' only")
    x = v.float_array("x", x)
    v.channel_input(x)
    c = x.shape[1]
    rm = v.per_channel("running_mean", running_mean, c)
    rv = v.per_channel("running_var", running_var, c)
    mean, var, n = batch_statistics(x)
    if variance == "unbiased" and n < 2:
        raise ValueError(f"the unbiased variance needs n >= 2 values per channel, got n={n}")
    if n < 1:
        raise ValueError(f"the batch statistics need n >= 1 values per channel, got n={n}")
    t = int(num_batches_tracked) + 1
    w = 1.0 / t if m is None else (m if momentum_of == "new" else 1.0 - m)
    batch_var = var * n / (n - 1) if variance == "unbiased" else var
    return (1.0 - w) * rm + w * mean, (1.0 - w) * rv + w * batch_var, t


def batchnorm_train_backward(x, dy, gamma=None, eps: float = 1e-5):
    """Analytic training backward (BN-GRAD-01).

    With sigma = sqrt(var + eps) and xhat = (x - mu)/sigma, per channel:
      dbeta  = sum dy
      dgamma = sum dy * xhat
      dx     = gamma/sigma * (dy - mean(dy) - xhat * mean(dy * xhat))
    Returns (dx, dgamma, dbeta).
    """
    eps = v.positive("eps", eps)
    x = v.float_array("x", x)
    v.channel_input(x)
    dy = v.same_shape("dy", dy, x.shape)
    g, _ = _affine(gamma, None, x.shape[1])
    axes = _axes(x)
    mean, var, _ = batch_statistics(x)
    sigma = _per_channel(np.sqrt(var + eps), x.ndim)
    xhat = (x - _per_channel(mean, x.ndim)) / sigma
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    mean_dy = dy.mean(axis=axes, keepdims=True)
    mean_dy_xhat = (dy * xhat).mean(axis=axes, keepdims=True)
    dx = _per_channel(g, x.ndim) / sigma * (dy - mean_dy - xhat * mean_dy_xhat)
    return dx, dgamma, dbeta


def batchnorm_eval_backward(x, dy, running_mean, running_var, gamma=None, eps: float = 1e-5):
    """Analytic eval backward (BN-GRAD-03): a diagonal Jacobian.

      dx = dy * gamma / sqrt(rv + eps); dgamma = sum dy * (x - rm)/sqrt(rv + eps);
      dbeta = sum dy. Returns (dx, dgamma, dbeta).
    """
    eps = v.positive("eps", eps)
    x = v.float_array("x", x)
    v.channel_input(x)
    dy = v.same_shape("dy", dy, x.shape)
    c = x.shape[1]
    rm = v.per_channel("running_mean", running_mean, c)
    rv = v.per_channel("running_var", running_var, c)
    g, _ = _affine(gamma, None, c)
    axes = _axes(x)
    inv_sigma = _per_channel(1.0 / np.sqrt(rv + eps), x.ndim)
    xhat = (x - _per_channel(rm, x.ndim)) * inv_sigma
    return dy * _per_channel(g, x.ndim) * inv_sigma, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def debiased_running_update(running_mean, running_var, num_batches_tracked: int, x, decay: float, *,
                            variance: str = "biased"):
    """One training step of zero-debiased running statistics (BN-TRAIN-02/03 under a convention with
    zero_debias, Haiku's hk.ExponentialMovingAverage, "the Adam debiasing procedure").

    The layer keeps a hidden EMA h with decay d (the old value's weight) from h = 0, and reports and
    normalises with the debiased average a = h / (1 - d^t), t the number of updates:

      t' = t + 1;  h' = d h + (1 - d) v;  a' = h' / (1 - d^t').

    With h = a (1 - d^t) this is an update of the debiased value itself with a weight that depends on
    the counter: a' = (1 - w) a + w v, w = (1 - d) / (1 - d^t'). At t = 0 (w = 1) the first batch
    statistic replaces whatever the average held. `running_mean`/`running_var` are the debiased
    averages a before the step; v is the biased batch variance (variance="biased") or var n/(n-1).
    Returns (a_mean', a_var', t').
    """
    d = float(decay)
    if not 0.0 <= d < 1.0:
        raise ValueError(f"decay must be in [0, 1) for a zero-debiased average, got {decay!r}")
    t = int(num_batches_tracked)
    if t < 0:
        raise ValueError(f"num_batches_tracked must be >= 0, got {num_batches_tracked!r}")
    # 1 - d^t' as -expm1(t' log1p(-(1 - d))): accurate to a few ulps even for d near 1, where 1 - d**t'
    # would cancel (1 - d is exact for d >= 1/2, Sterbenz)
    # (w <= 1 exactly: the rounding of the quotient is clamped; t = 0 gives w = 1, the batch alone)
    w = min(1.0, (1.0 - d) / -np.expm1((t + 1) * np.log1p(-(1.0 - d)))) if d > 0 and t > 0 else 1.0
    return running_update(running_mean, running_var, t, x, w, momentum_of="new", variance=variance)


# ---------------------------------------------------------------- the rest of the family (issue 15)
STATE_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def initial_state(num_features: int, *, affine: bool = True, track_running_stats: bool = True) -> dict:
    """The state of a freshly constructed BatchNorm, and what reset_parameters() restores (BN-RESET-01,
    BN-LAZY-01): weight 1, bias 0 (affine), running_mean 0, running_var 1, num_batches_tracked 0
    (track_running_stats); None for what the layer does not have. reset_running_stats() restores the
    last three and leaves weight and bias alone."""
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"num_features must be a positive int, got {num_features!r}")
    c = num_features
    return {"weight": np.ones(c) if affine else None, "bias": np.zeros(c) if affine else None,
            "running_mean": np.zeros(c) if track_running_stats else None,
            "running_var": np.ones(c) if track_running_stats else None,
            "num_batches_tracked": 0 if track_running_stats else None}


def counter_after_load(current: int, loaded: dict, *, legacy: bool) -> int:
    """num_batches_tracked after a strict load of the state `loaded` into a layer whose counter is
    `current` (BN-LOAD-01): the loaded counter where the state has one; in a legacy state (from before
    the counter existed, torch's state-dict version < 2) the layer's own counter, unchanged
    (torch _NormBase._load_from_state_dict since pytorch/pytorch#110850; 0 for a fresh layer). A current
    state without the counter is an incomplete checkpoint: KeyError (a strict load raises)."""
    if "num_batches_tracked" in loaded:
        t = int(loaded["num_batches_tracked"])
        if t < 0:
            raise ValueError(f"num_batches_tracked must be >= 0, got {t}")
        return t
    if not legacy:
        raise KeyError("num_batches_tracked: a current-format state without the counter is incomplete")
    return int(current)
