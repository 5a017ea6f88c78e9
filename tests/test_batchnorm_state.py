"""BatchNorm state round-trip, low-precision parameters and numerically hard inputs
(BN-STATE-01, BN-DTYPE-02, BN-NUM-01, BN-NUM-02)."""
import numpy as np
import pytest
from hypothesis import strategies as st

import reference as ref
from dropnorm import checks as ph
from dropnorm import inputs
from dropnorm import strategies as hh
from dropnorm import tolerances as tol
from dropnorm.bn_setup import draw_case


@pytest.mark.clause("BN-STATE-01")
@hh.given(data=st.data())
def test_state_roundtrip(impl, data):
    """A fresh layer loaded from the saved state gives bitwise equal eval outputs and the same counter."""
    case = draw_case(impl, data, track=True, layouts=False)
    case.layer.train(True)
    for step in range(data.draw(st.integers(0, 3), label="training steps")):
        case.layer.forward(inputs.channels(case.seed + step, case.shape, case.dtype), dtype=case.dtype)
    case.layer.train(False)
    twin = case.layer.roundtrip()
    twin.train(False)
    y1 = case.layer.forward(case.x, dtype=case.dtype).y
    y2 = twin.forward(case.x, dtype=case.dtype).y
    ph.assert_equal(y2, y1, "BN-STATE-01", "eval-output", case.describe())
    ph.check(twin.state()["num_batches_tracked"] == case.layer.state()["num_batches_tracked"], "BN-STATE-01",
             "counter", f"got num_batches_tracked {twin.state()['num_batches_tracked']} after the round-trip, "
                        f"expected {case.layer.state()['num_batches_tracked']}")


@pytest.mark.clause("BN-DTYPE-02")
@hh.given(data=st.data())
def test_low_precision_parameters(impl, data):
    """A layer converted to float16/bfloat16 takes and returns that dtype within the derived tolerance."""
    dtype = data.draw(st.sampled_from(["float16", "bfloat16"]), label="dtype")
    case = draw_case(impl, data, track="unused", dtypes=("float32",), layouts=False)
    case.layer.to(dtype)
    x = inputs.channels(case.seed, case.shape, dtype)
    w = None if case.weight is None else inputs.vector(case.seed + 1, case.shape[1], dtype, loc=1.0)
    b = None if case.bias is None else inputs.vector(case.seed + 2, case.shape[1], dtype, scale=2.0)
    if case.affine:
        case.layer.load(weight=w, bias=b)
    case.layer.train(True)
    out = case.layer.forward(x, dtype=dtype)
    ph.assert_dtype(out.dtype, dtype, "BN-DTYPE-02", case.describe())
    atol, _ = tol.bn_train_output(x, w, b, case.eps, dtype)
    ph.assert_close(out.y, ref.batchnorm_train_forward(x, w, b, case.eps), atol, "BN-DTYPE-02", "output",
                    f"{case.describe()}, parameters in {dtype}")


def _hard_input(kind, seed, shape, dtype, eps):
    rng = np.random.default_rng(seed)
    if kind == "offset":      # spread 1, offset 10^2..10^4 (10^3 for half precision)
        top = 3 if dtype in ("float16", "bfloat16") else 4
        return inputs.channels(seed, shape, dtype, offset=10.0 ** rng.uniform(2, top), spread=1.0) + 0.0
    if kind == "tiny-variance":  # variance ~ eps/100
        return inputs.channels(seed, shape, dtype, offset=1.0, spread=np.sqrt(eps) / 10)
    return np.broadcast_to(inputs.vector(seed, shape[1], dtype, scale=3.0).reshape((1, -1) + (1,) * (len(shape) - 2)),
                           shape).copy()  # constant channels


def _hard_run(impl, data):
    """One training call on a numerically hard input; returns (x, output, layer state, what, tolerance)."""
    kind = data.draw(st.sampled_from(["offset", "tiny-variance", "constant"]), label="kind")
    case = draw_case(impl, data, track=True, affine=False, dtypes=("float32", "float64", "float16", "bfloat16"))
    x = _hard_input(kind, case.seed, case.shape, case.dtype, case.eps)
    case.layer.train(True)
    out = case.layer.forward(x, dtype=case.dtype, layout=case.layout)
    atol, _ = tol.bn_train_output(x, None, None, case.eps, case.dtype, one_pass=False)
    return x, out, case.layer.state(), f"{case.describe()}, {kind} input", atol, case.eps


# Two tests, not one: a MUST failure (NaN, unbounded output) must not hide behind a SHOULD failure
# (lost accuracy) that the same implementation shows on an earlier example.
@pytest.mark.clause("BN-NUM-01")
@hh.given(data=st.data())
def test_numerically_hard_inputs(impl, data):
    """Large offsets, variance below eps and constant channels: finite output, |xhat| <= sqrt(n-1),
    running variance >= 0."""
    x, out, state, what, atol, _ = _hard_run(impl, data)
    n = x.size // x.shape[1]
    ph.check(bool(np.all(np.isfinite(out.y))), "BN-NUM-01", "finite", f"got non-finite output [{what}]")
    bound = np.sqrt(max(n - 1, 1)) + atol
    ph.check(bool(np.all(np.abs(out.y) <= bound)), "BN-NUM-01", "bounded",
             f"got max |xhat| {np.max(np.abs(out.y)):.4g}, expected <= sqrt(n-1) = {np.sqrt(n - 1):.4g} [{what}]")
    rv = state["running_var"]
    ph.check(bool(np.all(rv >= 0)), "BN-NUM-01", "running-var-nonnegative", f"got running_var {rv} [{what}]")


@pytest.mark.clause("BN-NUM-02")
@hh.given(data=st.data())
def test_accuracy_on_hard_inputs(impl, data):
    """On the same hard inputs, the error stays within the two-pass (linear in conditioning) bound."""
    x, out, _, what, atol, eps = _hard_run(impl, data)
    ph.assert_close(out.y, ref.batchnorm_train_forward(x, eps=eps), atol, "BN-NUM-02", "two-pass-accuracy", what)
