"""BatchNorm state round-trip and low-precision parameters (BN-STATE-01, BN-DTYPE-02).
Numerically hard inputs (BN-NUM-*) are in test_batchnorm_numerics.py."""
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.suite.bn_setup import draw_case


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
                        f"expected {case.layer.state()['num_batches_tracked']}", severity="wrong-state")


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
