"""BatchNorm on the rest of its input domain (issue 22): non-finite values kept in their channel
(BN-NONFINITE-01), and long batches, past the chunks (64 samples) and blocks (4096 values per channel)
at which split reductions merge their partial statistics (BN-TRAIN-01..03)."""
import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.suite.bn_setup import LONG_N, draw_case, expected_running, provided_dims
from dropnorm.spec.dtypes import round_to

NONFINITE = (float("nan"), float("inf"), float("-inf"))


def _with_nonfinite(case, data):
    """(channel c, the input with 1-3 of channel c's values replaced by inf, -inf or NaN, the mask of them)."""
    c = data.draw(st.integers(0, case.shape[1] - 1), label="non-finite channel")
    values = data.draw(st.lists(st.sampled_from(NONFINITE), min_size=1, max_size=3), label="non-finite values")
    rng = np.random.default_rng([case.seed, 23])
    chan = np.zeros(case.x[:, c].shape, bool)
    chan.flat[rng.choice(chan.size, size=min(len(values), chan.size), replace=False)] = True
    mask = np.zeros(case.x.shape, bool)
    mask[:, c] = chan
    bad = case.x.copy()
    bad[mask] = np.resize(np.array(values), int(mask.sum()))
    return c, bad, mask


@pytest.mark.clause("BN-NONFINITE-01")
@hh.given(data=st.data())
def test_nonfinite_stays_in_its_channel(impl, data):
    """In training an inf or NaN in channel c changes no other channel's output or running statistics
    (compared with the same input without them); in eval it changes only its own element's output,
    which is NaN for NaN and +-inf times sign(gamma_c) for +-inf."""
    case = draw_case(impl, data, track=True, layouts=False, min_c=2, domain=True)
    c, bad, mask = _with_nonfinite(case, data)
    others = [k for k in range(case.shape[1]) if k != c]
    what = f"{case.describe()}, {int(mask.sum())} non-finite value(s) {bad[mask].tolist()} in channel {c}"
    # eval first, on a fresh layer with the case's finite running statistics
    layer = case.fresh(impl)
    layer.train(False)
    y = layer.forward(bad.copy(), dtype=case.dtype).y
    expected = ref.batchnorm_eval_forward(case.x, case.running_mean, case.running_var, case.weight, case.bias,
                                          case.eps)
    atol = tol.bn_eval_output(case.x, case.running_mean, case.running_var, case.weight, case.bias, case.eps,
                              case.dtype)
    ph.assert_close(y[~mask], expected[~mask], atol[~mask], "BN-NONFINITE-01", "eval-other-elements",
                    f"eval, the finite elements (flat index), {what}")
    g = 1.0 if case.weight is None else float(np.sign(case.weight[c]))
    ph.assert_equal(y[mask], bad[mask] * g, "BN-NONFINITE-01", "eval-propagates", f"eval, {what}")
    # training: the other channels as BN-TRAIN-01..03 give them for the input without the non-finite values
    case.layer.train(True)
    t0 = case.layer.state()["num_batches_tracked"] or 0
    y = case.layer.forward(bad.copy(), dtype=case.dtype).y
    expected = ref.batchnorm_train_forward(case.x, case.weight, case.bias, case.eps)
    atol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, case.dtype,
                                  probabilistic=not case.structured)  # bn_setup.Domain.structured
    ph.assert_close(y[:, others], expected[:, others], atol[:, others], "BN-NONFINITE-01", "train-other-channels",
                    f"training, output of channels {others} (indexed among them), {what}")
    exp_rm, exp_rv, _, d_rm, d_rv = expected_running(impl, case, case.x, case.running_mean, case.running_var, t0)
    state = case.layer.state()
    ph.assert_close(np.asarray(state["running_mean"])[others], exp_rm[others], d_rm[others], "BN-NONFINITE-01",
                    "running-mean-other-channels", f"training, channels {others}, {what}")
    ph.assert_close(np.asarray(state["running_var"])[others], exp_rv[others], d_rv[others], "BN-NONFINITE-01",
                    "running-var-other-channels", f"training, channels {others}, {what}")


@pytest.mark.clause("BN-TRAIN-01", "BN-TRAIN-02", "BN-TRAIN-03")
@pytest.mark.parametrize("n_batch", LONG_N)
@hh.given(data=st.data())
def test_long_batches(impl, n_batch, data):
    """N in LONG_N (65 ... 4097: both sides of 64-sample chunks and of 4096-value blocks), few channels
    and small spatial sides, inputs from the whole domain: the training output (BN-TRAIN-01) and the
    running statistics after the call (BN-TRAIN-02/03) against the reference."""
    case = draw_case(impl, data, track=True, layouts=False, domain=True, n_batch=n_batch)
    case.layer.train(True)
    t0 = case.layer.state()["num_batches_tracked"] or 0
    y = case.layer.forward(case.x.copy(), dtype=case.dtype).y
    expected = ref.batchnorm_train_forward(case.x, case.weight, case.bias, case.eps)
    atol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, case.dtype,
                                  probabilistic=not case.structured)  # bn_setup.Domain.structured
    ph.assert_close(y, expected, atol, "BN-TRAIN-01", "output", case.describe())
    exp_rm, exp_rv, _, d_rm, d_rv = expected_running(impl, case, case.x, case.running_mean, case.running_var, t0)
    state = case.layer.state()
    ph.assert_close(state["running_mean"], exp_rm, d_rm, "BN-TRAIN-02", "running-mean", case.describe())
    ph.assert_close(state["running_var"], exp_rv, d_rv, "BN-TRAIN-03", "running-var", case.describe())


# Kernels launch one block (or grid row) per channel, and CUDA's grid dimensions y and z stop at 65535:
# a kernel that maps channels to one of them skips or aliases channels past it. WIDE_C sits on both sides
# of that edge and of 2^16; N = 4 and no spatial extent keep each case at 4 * C values (about 0.2 s).
WIDE_C = (65535, 65536, 65537)


@pytest.mark.clause("BN-TRAIN-01", "BN-EVAL-01")
@pytest.mark.parametrize("channels", WIDE_C)
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_wide_layers(impl, dims, channels):
    """C in WIDE_C channels, float32, affine parameters drawn per channel: the training output (BN-TRAIN-01)
    and then the eval output with the running statistics that call left (BN-EVAL-01) against the
    reference, every channel (a round-3 blind probe that never processed channels >= 65535 escaped)."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    shape = (4, channels) + (1,) * (dims if dims > 1 else 0)  # (N, C), (N, C, 1, 1), (N, C, 1, 1, 1)
    rng = np.random.default_rng(channels + dims)
    # centred values: this test is about the channel count; offsets and their cancellation are the domain
    # tests' (a one-pass variance, Keras's recorded BN-NUM-01 defect, is not what this case should show)
    x = round_to(rng.normal(0.0, 1.0, shape), "float32")
    weight, bias = round_to(rng.uniform(0.5, 1.5, channels), "float32"), round_to(rng.uniform(-1, 1, channels), "float32")
    layer = impl.batchnorm(dims, channels, eps=1e-5, momentum=1.0)
    layer.load(weight=weight, bias=bias)
    layer.train(True)
    what = f"BatchNorm{dims}d({channels}, momentum=1.0), float32 {shape}"
    y = layer.forward(x.copy(), dtype="float32").y
    atol, _ = tol.bn_train_output(x, weight, bias, 1e-5, "float32")
    ph.assert_close(y, ref.batchnorm_train_forward(x, weight, bias, 1e-5), atol, "BN-TRAIN-01", "output",
                    f"training, {what}")
    state = layer.state()
    rm, rv = np.asarray(state["running_mean"], np.float64), np.asarray(state["running_var"], np.float64)
    layer.train(False)
    y = layer.forward(x.copy(), dtype="float32").y
    atol = tol.bn_eval_output(x, rm, rv, weight, bias, 1e-5, "float32")
    ph.assert_close(y, ref.batchnorm_eval_forward(x, rm, rv, weight, bias, 1e-5), atol, "BN-EVAL-01", "output",
                    f"eval after one training call, {what}")
