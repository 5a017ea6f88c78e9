"""The frameworks of issue 16 (MLX, tinygrad, Flax NNX, Equinox, PaddlePaddle), each checked in a few
lines of its own API against the bugs its tracker knows and the findings the audit made
(docs/matrix-more.md). Each test skips when its framework is not installed (pip install the extra).

The audits themselves run in tests/test_frameworks.py (every REGISTRY entry that is installed).
These are regression checks of the frameworks' known issues, not property tests: they cite no spec
clause of their own; the clause each one maps to is named in its docstring. A known defect that is
still present is an xfail naming its finding, so that a fix shows up as XPASS.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest


def _mlx():
    pytest.importorskip("mlx.core")
    import mlx.core as mx
    import mlx.nn as nn
    return mx, nn


def test_mlx_batchnorm_statistics_update_inside_value_and_grad():
    """ml-explore/mlx#1960 (BN-TRAIN-02/03): the running statistics are updated by a training step
    under nn.value_and_grad exactly as by a plain call."""
    mx, nn = _mlx()
    x = mx.array(np.random.default_rng(0).normal(size=(10, 4, 4, 3)).astype(np.float32))
    a, b = nn.BatchNorm(3), nn.BatchNorm(3)
    loss, grads = nn.value_and_grad(a, lambda m, xx: (m(xx) ** 2).sum())(a, x)
    mx.eval(loss, grads, a.parameters())
    mx.eval(b(x), b.parameters())
    assert np.allclose(np.array(a.running_mean), np.array(b.running_mean), rtol=0, atol=1e-7)
    assert np.allclose(np.array(a.running_var), np.array(b.running_var), rtol=0, atol=1e-7)
    assert not np.allclose(np.array(a.running_var), 1.0)


def test_mlx_running_variance_is_unbiased():
    """ml-explore/mlx PR #3817 (BN-TRAIN-03, convention mlx): the running variance is fed var n/(n-1)."""
    mx, nn = _mlx()
    x = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
    bn = nn.BatchNorm(2, momentum=1.0)
    mx.eval(bn(mx.array(x)), bn.parameters())
    assert np.allclose(np.array(bn.running_var), x.var(axis=0, ddof=1), rtol=1e-5)


@pytest.mark.xfail(reason="docs/findings/mlx-batchnorm-half-precision-statistics.md", strict=False)
def test_mlx_float16_variance_of_a_constant_channel_is_zero():
    """docs/findings/mlx-batchnorm-half-precision-statistics.md (BN-NUM-02): a constant float16 channel
    of 4508 values normalises to 0, not NaN."""
    mx, nn = _mlx()
    x = mx.full((4508, 1), 200.0).astype(mx.float16)
    y = nn.BatchNorm(1, affine=False)(x)
    assert float(y[0].item()) == 0.0


def test_tinygrad_running_statistics_unbiased_and_realised():
    """tinygrad PR #807 (BN-TRAIN-03: var n/(n-1), as torch) and #17206 (running statistics must be
    realised in training although only the output is read), with the output realised each step."""
    if "DEV" not in os.environ and shutil.which("clang") is None:
        os.environ["DEV"] = "PYTHON"
    tinygrad = pytest.importorskip("tinygrad")
    from tinygrad import Context, Tensor, nn
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm(3, momentum=0.5)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(2):
        x = rng.normal(size=(4, 3, 2)).astype(np.float32)
        with Context(TRAINING=1):
            bn(Tensor(x)).realize()
        rm = 0.5 * rm + 0.5 * x.mean(axis=(0, 2))
        rv = 0.5 * rv + 0.5 * x.var(axis=(0, 2), ddof=1)
    assert tinygrad is not None
    assert np.allclose(bn.running_mean.numpy(), rm, atol=1e-6)
    assert np.allclose(bn.running_var.numpy(), rv, atol=1e-6)
    assert int(bn.num_batches_tracked.numpy()) == 2


def test_flax_nnx_dropout_rate_one_is_identity_when_deterministic():
    """google/flax PR #2510 (DO-EVAL-01): Dropout(rate=1) returned zeros even when deterministic."""
    pytest.importorskip("flax.nnx")
    import jax.numpy as jnp
    from flax import nnx
    x = jnp.arange(1.0, 7.0)
    assert np.array_equal(np.asarray(nnx.Dropout(1.0, rngs=nnx.Rngs(0))(x, deterministic=True)), np.asarray(x))
    assert not np.any(np.asarray(nnx.Dropout(1.0, rngs=nnx.Rngs(0))(x, deterministic=False)))


@pytest.mark.xfail(reason="docs/findings/equinox-batchnorm-batch-mode-eval-variance.md", strict=False)
def test_equinox_batch_mode_inference_uses_the_running_variance():
    """docs/findings/equinox-batchnorm-batch-mode-eval-variance.md (BN-EVAL-01): after one training
    step on a batch of variance 5, inference normalises with 1.04 (stored) or 5 (debiased), not 104."""
    pytest.importorskip("equinox")
    import warnings

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bn, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(1, axis_name="batch", mode="batch", momentum=0.99,
                                                             channelwise_affine=False)
    x = jnp.asarray(np.array([[0.0], [2.0], [4.0], [6.0]], np.float32))
    _, state = jax.vmap(bn, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)
    ye, _ = jax.vmap(lambda a, s: bn(a, s, inference=True), axis_name="batch", in_axes=(0, None),
                     out_axes=(0, None))(x, state)
    used_var = float((3.0 / np.asarray(ye).ravel()[0]) ** 2)
    assert used_var < 6.0, f"inference normalised with variance {used_var:.1f}"


def test_paddle_running_variance_is_biased_as_documented():
    """Convention paddle (BN-TRAIN-03): moving_variance = momentum * moving_variance + (1 - momentum) *
    mini_batch_var with the biased mini-batch variance (paddle.nn.BatchNorm2D docs)."""
    paddle = pytest.importorskip("paddle")
    x = np.random.default_rng(3).normal(size=(4, 3, 2, 2)).astype(np.float32)
    bn = paddle.nn.BatchNorm2D(3)
    bn.train()
    bn(paddle.to_tensor(x))
    assert np.allclose(bn._variance.numpy(), 0.9 + 0.1 * x.var(axis=(0, 2, 3)), rtol=1e-5)


def _haiku_batchnorm(decay_rate):
    """hk.BatchNorm(decay_rate, no scale/offset) on channels-first input, transformed with state."""
    hk = pytest.importorskip("haiku")
    import jax
    jax.config.update("jax_enable_x64", True)   # float64 stays float64 (as dropnorm's JAX adapters run)
    return hk.transform_with_state(lambda x, is_training: hk.BatchNorm(
        False, False, decay_rate, data_format="channels_first")(x, is_training))


def test_haiku_running_statistics_are_zero_debiased():
    """Convention haiku (BN-TRAIN-02/03, zero_debias): hk.BatchNorm's moving averages are
    hk.ExponentialMovingAverage's debiased averages, hidden / (1 - d^t), of the batch means and biased
    batch variances (the first batch replaces the zero initial value), and eval normalises with them."""
    pytest.importorskip("haiku")
    pytest.importorskip("jax")
    import jax.numpy as jnp
    from dropnorm import reference as ref
    d = 0.75
    bn = _haiku_batchnorm(d)
    rng = np.random.default_rng(4)
    xs = [rng.normal(3.0, 2.0, size=(6, 2, 3)) for _ in range(3)]
    params, state = bn.init(None, jnp.zeros((6, 2, 3), jnp.float64), True)
    rm, rv = np.zeros(2), np.zeros(2)
    for t, x in enumerate(xs):
        _, state = bn.apply(params, state, None, jnp.asarray(x), True)
        rm, rv, _ = ref.debiased_running_update(rm, rv, t, x, d, variance="biased")
    assert np.allclose(np.asarray(state["batch_norm/~/mean_ema"]["average"]).ravel(), rm, rtol=1e-12, atol=0)
    assert np.allclose(np.asarray(state["batch_norm/~/var_ema"]["average"]).ravel(), rv, rtol=1e-12, atol=0)
    assert int(state["batch_norm/~/mean_ema"]["counter"]) == 3
    y, _ = bn.apply(params, state, None, jnp.asarray(xs[0]), False)
    assert np.allclose(np.asarray(y), ref.batchnorm_eval_forward(xs[0], rm, rv), rtol=1e-10, atol=1e-12)


@pytest.mark.xfail(reason="docs/findings/haiku-batchnorm-one-pass-variance.md", strict=False)
def test_haiku_constant_channel_normalises_to_zero():
    """docs/findings/haiku-batchnorm-one-pass-variance.md (BN-NUM-01, pytorch/pytorch#5410 for Haiku): a
    constant float32 channel of 1.234567e8 normalises to 0 and leaves a non-negative running variance,
    not NaN and -9.7e9 (the batch variance is mean(x^2) - mean(x)^2, unclamped)."""
    pytest.importorskip("haiku")
    pytest.importorskip("jax")
    import jax.numpy as jnp
    bn = _haiku_batchnorm(0.9)
    x = jnp.full((64, 3), 1.234567e8, jnp.float32)
    params, state = bn.init(None, x, True)
    y, state = bn.apply(params, state, None, x, True)
    assert np.all(np.asarray(y) == 0.0)
    assert np.all(np.asarray(state["batch_norm/~/var_ema"]["average"]) >= 0.0)
