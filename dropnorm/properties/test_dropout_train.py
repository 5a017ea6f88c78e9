"""Dropout in training mode: exact checks on the output (clauses DO-TRAIN-01, DO-P0-01,
DO-P1-01, DO-DTYPE-01, DO-LAYOUT-01, DO-EMPTY-01, DO-NONFINITE-01).

The mask is read back from the output (inputs have no zeros), so the scale is
checked exactly, element by element, within the roundings of the dtype (tolerances.dropout_scale_rtol).
"""
import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm.suite import checks as ph
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.spec.dtypes import DTYPES, round_to
from dropnorm.spec.kinds import CHANNEL_KINDS
from dropnorm.properties._family import construct
from dropnorm.spec.tolerances import dropout_scale_rtol


@pytest.mark.clause("DO-TRAIN-01", "DO-DTYPE-01", "DO-LAYOUT-01")
@hh.given(data=st.data())
def test_training_output_is_zero_or_scaled_input(impl, data):
    """Each element is 0 or x * 1/(1-p), in every dtype and layout; dtype and shape are kept."""
    shape = data.draw(hh.dropout_shapes(), label="shape")
    p = data.draw(hh.probabilities(0.0, 0.999), label="p")  # p = 1 exactly is DO-P1-01
    dtype = data.draw(hh.expressed(impl, "Dropout", "dtype", hh.DTYPES), label="dtype")
    layout = data.draw(hh.strided_layouts(len(shape)), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    x = inputs.nonzero(seed, shape, dtype)
    layer = impl.dropout(p=p)
    layer.train(True)
    # the contiguous input first: a failure is blamed on DO-LAYOUT-01 only if it passed
    for run in ("contiguous", layout):
        impl.seed(seed)
        out = layer.forward(x, dtype=dtype, layout=run)
        ph.assert_dtype(out.dtype, dtype, "DO-DTYPE-01", f"Dropout(p={p}) on {dtype}")
        clause = "DO-TRAIN-01" if run == "contiguous" else "DO-LAYOUT-01"
        ph.assert_inverted_dropout(x, out.y, p, dtype, clause, f"Dropout(p={p}), {dtype}, {run}")


@pytest.mark.clause("DO-P0-01")
@hh.given(shape=hh.dropout_shapes(), dtype=hh.dtypes(), seed=hh.seeds())
def test_p0_is_identity(impl, shape, dtype, seed):
    """p = 0 returns the input's values bitwise."""
    hh.assume_expressed(impl, "Dropout", dtype=dtype)
    x = inputs.nonzero(seed, shape, dtype)
    layer = impl.dropout(p=0.0)
    layer.train(True)
    out = layer.forward(x, dtype=dtype)
    ph.assert_dtype(out.dtype, dtype, "DO-P0-01", "Dropout(p=0)")
    ph.assert_equal(out.y, x, "DO-P0-01", "identity", f"Dropout(p=0), {dtype}")


@pytest.mark.clause("DO-P1-01")
@hh.given(shape=hh.dropout_shapes(), dtype=hh.dtypes(), seed=hh.seeds())
def test_p1_gives_zeros_not_nan(impl, shape, dtype, seed):
    """p = 1 on finite input gives exact zeros (no 0 * inf = NaN)."""
    hh.assume_expressed(impl, "Dropout", dtype=dtype)
    x = inputs.nonzero(seed, shape, dtype)
    layer = impl.dropout(p=1.0)
    layer.train(True)
    impl.seed(seed)
    out = layer.forward(x, dtype=dtype)
    ph.assert_equal(out.y, np.zeros_like(x), "DO-P1-01", "zeros", f"Dropout(p=1), {dtype}")


@pytest.mark.clause("DO-EMPTY-01")
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4), (3, 2, 0)])
@pytest.mark.parametrize("training", [True, False])
def test_empty_input(impl, shape, training):
    """A zero-element input returns a zero-element output of the same shape and dtype."""
    layer = impl.dropout(p=0.3)
    layer.train(training)
    out = layer.forward(np.zeros(shape), dtype="float32")
    ph.assert_shape(out.y.shape, shape, "DO-EMPTY-01", f"Dropout(p=0.3), training={training}")
    ph.assert_dtype(out.dtype, "float32", "DO-EMPTY-01", "empty input")


@pytest.mark.clause("DO-NONFINITE-01")
@hh.given(p=hh.probabilities(0.1, 0.9), seed=hh.seeds(), dtype=hh.dtypes())
def test_nonfinite_inputs(impl, p, seed, dtype):
    """Kept inf/NaN propagate; dropped elements are 0 whatever their input.

    The mask is read from a twin call with the same seed on finite input, so
    this assumes the mask depends only on the seed and shape (DO-SEED-01).
    """
    hh.assume_expressed(impl, "Dropout", dtype=dtype)
    n = 400
    finite = inputs.nonzero(seed, (n,), dtype)
    special = finite.copy()
    special[0::4], special[1::4], special[2::4] = np.inf, -np.inf, np.nan
    layer = impl.dropout(p=p)
    layer.train(True)
    impl.seed(seed)
    mask = ph.read_mask(layer.forward(finite, dtype=dtype).y)
    impl.seed(seed)
    y = layer.forward(special, dtype=dtype).y
    kept_expected = np.where(mask, special / (1 - p), 0.0)
    nonfinite = ~np.isfinite(special)
    ph.assert_equal(np.where(nonfinite & mask, y, 0.0), np.where(nonfinite & mask, kept_expected, 0.0),
                    "DO-NONFINITE-01", "kept-propagates", f"Dropout(p={p}), kept inf/NaN, {dtype}")
    ph.assert_equal(np.where(nonfinite & ~mask, y, 0.0), np.zeros(n),
                    "DO-NONFINITE-01", "dropped-is-zero", f"Dropout(p={p}), dropped inf/NaN, {dtype}")


# the smallest normal and the subnormal spacing of each dtype (IEEE 754: 2^(emin), 2^(emin - mantissa bits))
SMALLEST_NORMAL = {"float64": 2.0 ** -1022, "float32": 2.0 ** -126, "bfloat16": 2.0 ** -126, "float16": 2.0 ** -14}
SUBNORMAL_SPACING = {"float64": 2.0 ** -1074, "float32": 2.0 ** -149, "bfloat16": 2.0 ** -133, "float16": 2.0 ** -24}


SUBNORMAL_SHAPES = {"Dropout": (400,), "Dropout1d": (4, 25, 4), "Dropout2d": (4, 25, 2, 2), "Dropout3d": (4, 25, 2, 2, 1)}


@pytest.mark.clause("DO-TRAIN-01", "D2-TRAIN-01")
@pytest.mark.parametrize("dtype", DTYPES)  # every dtype in every profile: the subnormal range is per dtype
@pytest.mark.parametrize("kind", ("Dropout",) + CHANNEL_KINDS)
@hh.given(p=hh.probabilities(0.1, 0.9), seed=hh.seeds())
def test_subnormal_and_signed_zero_inputs(impl, kind, dtype, p, seed):
    """Kept subnormal inputs are scaled like any other (x/(1-p), not flushed to zero), and a kept -0.0 stays
    a zero: DO-TRAIN-01 (Dropout) and D2-TRAIN-01 (the channel kinds) over the whole finite domain (a
    round-3 blind probe flushing subnormals in Dropout1d, as fast-math FTZ/DAZ modes do, escaped). The mask
    is read from a twin call with the same seed on normal input (DO-SEED-01), as for DO-NONFINITE-01.
    Tolerance: the scale's relative rounding (dropout_scale_rtol) plus one subnormal spacing, the absolute
    resolution below the smallest normal."""
    if not impl.provides(kind):
        pytest.skip(f"not provided: {kind}")
    if not impl.expresses(kind, dtype=dtype):
        raise NotProvided(f"{impl.name}: {kind} with {dtype} input")
    clause = "DO-TRAIN-01" if kind == "Dropout" else "D2-TRAIN-01"
    shape = SUBNORMAL_SHAPES[kind]
    normal = inputs.nonzero(seed, shape, dtype)
    rng = np.random.default_rng(seed)
    tiny = round_to(np.sign(normal) * SMALLEST_NORMAL[dtype] * rng.uniform(0.05, 0.95, shape), dtype)
    tiny.reshape(-1)[3::8] = -0.0
    layer = construct(impl, kind, p=p)
    layer.train(True)
    impl.seed(seed)
    mask = ph.read_mask(layer.forward(normal, dtype=dtype).y)
    impl.seed(seed)
    y = layer.forward(tiny, dtype=dtype).y
    expected = np.where(mask, tiny / (1 - p), 0.0)
    atol = dropout_scale_rtol(dtype) * np.abs(expected) + SUBNORMAL_SPACING[dtype]
    ph.assert_close(y, expected, atol, clause, "scale", f"{kind}(p={p}), {shape} subnormal and -0.0 inputs, {dtype}")
