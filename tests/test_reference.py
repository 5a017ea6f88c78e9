"""The numpy reference is itself tested: hand-computed cases, central finite differences
for the analytic backward passes, and clear errors for bad parameters."""
import math

import numpy as np
import pytest

from dropnorm import reference as ref


def test_batchnorm_hand_computed():
    # one channel, values 1, 3: mu = 2, biased var = 1; eps = 3 gives sqrt(4) = 2
    x = np.array([[1.0], [3.0]])
    y = ref.batchnorm_train_forward(x, gamma=[2.0], beta=[0.5], eps=3.0)
    np.testing.assert_array_equal(y, [[2 * -0.5 + 0.5], [2 * 0.5 + 0.5]])
    rm, rv, t = ref.running_update([0.0], [1.0], 0, x, momentum=0.25)
    # unbiased var = 1 * 2/1 = 2: rv = 0.75 * 1 + 0.25 * 2; rm = 0.25 * 2
    np.testing.assert_array_equal(rm, [0.5])
    np.testing.assert_array_equal(rv, [1.25])
    assert t == 1
    rm, rv, t = ref.running_update([10.0], [10.0], 0, x, momentum=None)  # m = 1/1: the batch alone
    np.testing.assert_array_equal(rm, [2.0])
    np.testing.assert_array_equal(rv, [2.0])


def test_batchnorm_statistics_are_per_channel():
    x = np.zeros((2, 2, 2))
    x[:, 1] = [[0.0, 2.0], [4.0, 6.0]]
    mean, var, n = ref.batch_statistics(x)
    np.testing.assert_array_equal(mean, [0.0, 3.0])
    np.testing.assert_array_equal(var, [0.0, 5.0])
    assert n == 4


def test_eval_hand_computed():
    y = ref.batchnorm_eval_forward(np.array([[5.0]]), [1.0], [3.0], gamma=[3.0], beta=[-1.0], eps=1.0)
    np.testing.assert_array_equal(y, [[3.0 * 4.0 / 2.0 - 1.0]])


def test_dropout_hand_computed():
    x = np.array([2.0, -4.0, 8.0])
    np.testing.assert_array_equal(ref.dropout_forward(x, [1, 0, 1], 0.75), [8.0, 0.0, 32.0])
    np.testing.assert_array_equal(ref.dropout_forward(x, [1, 0, 1], 0.75, training=False), x)
    np.testing.assert_array_equal(ref.dropout_forward([np.inf, np.nan], [0, 0], 0.5), [0.0, 0.0])
    np.testing.assert_array_equal(ref.dropout_forward(x, [0, 0, 0], 1.0), [0.0, 0.0, 0.0])
    mask = ref.sample_channel_mask(np.random.default_rng(0), (3, 4, 5, 6), 0.5)
    assert mask.shape == (3, 4, 1, 1)


def _numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("shape", [(4, 2), (2, 3, 3), (2, 2, 2, 3)])
def test_batchnorm_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=shape), rng.normal(size=shape)
    gamma, beta, eps = rng.normal(size=shape[1]), rng.normal(size=shape[1]), 0.3
    dx, dg, db = ref.batchnorm_train_backward(x, dy, gamma, eps)
    # central differences: truncation O(h^2) ~ 1e-12, cancellation ~ 1e-16/h ~ 1e-10
    loss = (lambda xx: float(np.sum(dy * ref.batchnorm_train_forward(xx, gamma, beta, eps))))
    np.testing.assert_allclose(dx, _numeric_grad(loss, x), atol=1e-7)
    np.testing.assert_allclose(dg, _numeric_grad(lambda g: float(np.sum(dy * ref.batchnorm_train_forward(
        x, g, beta, eps))), gamma), atol=1e-7)
    np.testing.assert_allclose(db, dy.sum(axis=(0,) + tuple(range(2, x.ndim))), atol=1e-12)
    rm, rv = rng.normal(size=shape[1]), rng.uniform(0.5, 2, size=shape[1])
    dx, dg, _ = ref.batchnorm_eval_backward(x, dy, rm, rv, gamma, eps)
    loss = (lambda xx: float(np.sum(dy * ref.batchnorm_eval_forward(xx, rm, rv, gamma, beta, eps))))
    np.testing.assert_allclose(dx, _numeric_grad(loss, x), atol=1e-7)


@pytest.mark.parametrize("call,name", [
    (lambda: ref.dropout_forward([1.0], [1], 1.5), "p"),
    (lambda: ref.dropout_forward([1.0], [1], math.nan), "p"),
    (lambda: ref.sample_mask(np.random.default_rng(0), (2,), -0.1), "p"),
    (lambda: ref.batchnorm_train_forward(np.ones((2, 2)), eps=0.0), "eps"),
    (lambda: ref.batchnorm_train_forward(np.ones((2, 2)), eps=-1.0), "eps"),
    (lambda: ref.running_update([0.0], [1.0], 0, np.ones((2, 1)), momentum=1.5), "momentum"),
    (lambda: ref.batchnorm_train_forward(np.ones((1, 3))), "value per channel"),
    (lambda: ref.batchnorm_train_forward(np.ones((2, 3)), gamma=[1.0, 1.0]), "gamma"),
    (lambda: ref.batchnorm_eval_forward(np.ones((2, 3)), [0.0] * 2, [1.0] * 3), "running_mean"),
    (lambda: ref.batchnorm_train_forward(np.ones(3)), "dimensions"),
])
def test_bad_parameters_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="p"):
        ref.dropout_forward([1.0], [1], "0.5")
    with pytest.raises(TypeError, match="x"):
        ref.batchnorm_train_forward(np.array([["a", "b"], ["c", "d"]]))


def test_running_update_conventions_hand_computed():
    # one channel, values 1, 3: mu = 2, biased var = 1, unbiased var = 2 (n = 2)
    x = np.array([[1.0], [3.0]])
    # PyTorch: momentum 0.25 weighs the new batch, unbiased variance
    rm, rv, t = ref.running_update([0.0], [1.0], 0, x, 0.25, momentum_of="new", variance="unbiased")
    np.testing.assert_array_equal([rm[0], rv[0], t], [0.5, 0.75 * 1 + 0.25 * 2, 1])
    # ONNX / Keras / Flax: momentum 0.75 weighs the old value, biased variance: the same weights
    rm, rv, t = ref.running_update([0.0], [1.0], 0, x, 0.75, momentum_of="old", variance="biased")
    np.testing.assert_array_equal([rm[0], rv[0], t], [0.5, 0.75 * 1 + 0.25 * 1, 1])
    # TF's fused kernel: new-batch weight, unbiased; weight 1 replaces the statistics
    rm, rv, _ = ref.running_update([9.0], [9.0], 0, x, 1.0, momentum_of="new", variance="unbiased")
    np.testing.assert_array_equal([rm[0], rv[0]], [2.0, 2.0])
    # the two conventions agree when m_old = 1 - m_new (exact for m = 0.375: 1 - m is exact)
    rng = np.random.default_rng(3)
    x, rm0 = rng.normal(size=(4, 3, 2)), rng.normal(size=3)
    for variance in ("biased", "unbiased"):
        a = ref.running_update(rm0, [1.0, 2.0, 3.0], 5, x, 0.375, momentum_of="new", variance=variance)
        b = ref.running_update(rm0, [1.0, 2.0, 3.0], 5, x, 0.625, momentum_of="old", variance=variance)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2] == b[2] == 6


def test_running_update_biased_accepts_one_value_per_channel():
    rm, rv, t = ref.running_update([1.0], [4.0], 0, np.array([[3.0]]), 0.5, momentum_of="old", variance="biased")
    np.testing.assert_array_equal([rm[0], rv[0], t], [2.0, 2.0, 1])  # var of one value is 0
    with pytest.raises(ValueError, match="n >= 2"):
        ref.running_update([1.0], [4.0], 0, np.array([[3.0]]), 0.5)


@pytest.mark.parametrize("kwargs,name", [
    (dict(momentum_of="newest"), "momentum_of"),
    (dict(variance="sample"), "variance"),
    (dict(momentum=None, momentum_of="old"), "momentum=None"),
])
def test_running_update_rejects_unknown_conventions(kwargs, name):
    kwargs = {"momentum": 0.1, **kwargs}
    with pytest.raises(ValueError, match=name):
        ref.running_update([0.0], [1.0], 0, np.ones((2, 1)), **kwargs)


def test_mask_shape_and_shared_axes():
    assert ref.mask_shape((2, 3, 4, 5), ()) == (2, 3, 4, 5)
    assert ref.mask_shape((2, 3, 4, 5), (2, 3)) == (2, 3, 1, 1)      # Flax broadcast_dims=(2, 3)
    assert ref.mask_shape((2, 3, 4, 5), (-1,)) == (2, 3, 4, 1)
    assert ref.shared_axes_of((None, None, 1, 1), (2, 3, 4, 5)) == (2, 3)  # Keras noise_shape
    assert ref.shared_axes_of((2, 1, 4, 5), (2, 3, 4, 5)) == (1,)
    mask = ref.sample_mask(np.random.default_rng(0), (3, 4, 5, 6), 0.5, shared_axes=(2, 3))
    assert mask.shape == (3, 4, 5, 6)
    assert np.all(mask == mask[:, :, :1, :1])                     # one draw per (N, C)
    channel = ref.sample_channel_mask(np.random.default_rng(0), (3, 4, 5, 6), 0.5)
    np.testing.assert_array_equal(mask[:, :, :1, :1], channel)    # Dropout2d is the same draw
    # without shared axes the stream is the plain element-wise draw
    np.testing.assert_array_equal(ref.sample_mask(np.random.default_rng(1), (4, 5), 0.3),
                                  (np.random.default_rng(1).random((4, 5)) >= 0.3).astype(float))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_transposed_folding_is_torchs_along_weight_dim_1(d):
    """BN-FOLD-01 (issue 24): reference.folding's ConvTransposeNd forward equals torch.nn.ConvTransposeNd in
    float64 (stride 1, no padding), its fold_params equals torch's fuse_conv_bn_eval(..., transpose=True)
    (weight (in, out, *kernel) scaled along dim 1), both within fold_bounds; a fold along dim 0 (as for
    ConvNd) is far outside them, so the bound tells the two axes apart."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from dropnorm.reference import folding
    kind = f"ConvTranspose{d}d"
    rng = np.random.default_rng(d)
    w, b = rng.normal(size=(3, 3) + (2,) * d), rng.normal(size=3)
    x = rng.normal(size=(2, 3) + (3,) * d)
    rm, rv, g, beta = rng.normal(size=3), rng.uniform(0.1, 2.0, 3), rng.normal(size=3), rng.normal(size=3)
    eps = 1e-5
    conv = getattr(torch.nn, kind)(3, 3, (2,) * d).double()
    bn = getattr(torch.nn, f"BatchNorm{d}d")(3).double().eval()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(b))
        for key, value in (("running_mean", rm), ("running_var", rv), ("weight", g), ("bias", beta)):
            getattr(bn, key).copy_(torch.from_numpy(value))
        y_torch = bn(conv(torch.from_numpy(x))).numpy()
        fused = fuse_conv_bn_eval(conv.eval(), bn, transpose=True)
    args = (kind, w, b, rm, rv, eps, g, beta)
    bounds = folding.fold_bounds(kind, x, *args[1:], dtype="float64")
    w_fold, b_fold = folding.fold_params(*args)
    assert np.all(np.abs(folding.conv_bn_eval(kind, x, *args[1:]) - y_torch) <= bounds["output"])
    assert np.all(np.abs(fused.weight.detach().numpy() - w_fold) <= bounds["weight"])
    assert np.all(np.abs(fused.bias.detach().numpy() - b_fold) <= bounds["bias"])
    along_dim_0 = w * folding.scale(rv, eps, g).reshape((-1,) + (1,) * (d + 1))
    assert np.any(np.abs(along_dim_0 - w_fold) > 1e6 * bounds["weight"])
