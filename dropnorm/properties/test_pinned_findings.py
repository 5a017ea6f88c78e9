"""Pinned cases (BN-LAYOUT-01, BN-GRAD-01, BN-GRAD-03): the triggering inputs of recorded findings,
run for every implementation in every profile and for every seed, so that a verdict on them never
depends on what hypothesis happens to draw. Each case is also a valid case for any implementation:
a correct one passes it.

- torch CPU batch-norm backward for transposed (1, C, 1, W) inputs
  (docs/findings/torch-batchnorm-backward-transposed.md): eval (float64) and training (float32,
  eps = 1, track_running_stats=False), each on its own fresh layer, contiguous first (so that a
  failure of the plain case is blamed on BN-GRAD-01/03, not on the layout).
- torch CPU half-precision batch norm without parameters or running statistics saves its batch mean
  and 1/std in the half dtype (docs/findings/torch-batchnorm-half-no-parameters-saved-statistics.md):
  BatchNorm1d(3, affine=False, track_running_stats=False), x (2, 3) at an offset of 5, std 0.1.
"""
import numpy as np
import pytest

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.spec import conventions
from dropnorm.suite import inputs
from dropnorm.spec import tolerances as tol
from dropnorm.suite.bn_setup import provided_dims
from dropnorm.spec.dtypes import round_to
from dropnorm.properties._family import compare_layout_run

SHAPES = [(1, 2, 1, 2), (1, 3, 1, 4)]


@pytest.mark.clause("BN-LAYOUT-01", "BN-GRAD-01", "BN-GRAD-03")
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_transposed_backward_with_size_one_dims(impl, shape, training):
    """dx, dgamma, dbeta for a (1, C, 1, W) input stored transposed equal the analytic backward,
    as for the contiguous input (torch's recorded CPU backward bug)."""
    if 2 not in provided_dims(impl):
        pytest.skip("not provided: BatchNorm2d")
    dtype = "float32" if training else "float64"
    c = shape[1]
    x = inputs.channels(11, shape, dtype)
    dy = inputs.channels(12, shape, dtype)
    # eps as the layer stores it (a framework may keep it in float32: spec/conventions.toml)
    eps = conventions.of(impl).attribute(1.0 if training else 1e-5)
    rm, rv = inputs.vector(13, c, "float32"), inputs.vector(14, c, "float32", loc=1.0, scale=0.5, positive=True)
    seen = {}  # the contiguous run's results: a layout run is judged against them where they fail
    for layout in ("contiguous", "transposed"):
        layer = impl.batchnorm(2, c, eps=1.0 if training else 1e-5, track_running_stats=not training)  # fresh per run
        if dtype == "float64":
            layer.to("float64")
        state = layer.state()
        weight = state["weight"]
        what = f"BatchNorm2d({c}, eps={eps}), {'training' if training else 'eval'}, {dtype} {shape} {layout}"
        if training:
            layer.train(True)
            dx, dg, db = ref.batchnorm_train_backward(x, dy, weight, eps)
            t_dx, t_dg, t_db = tol.bn_train_grads(x, dy, weight, eps, dtype, state["param_dtype"])
            clause = "BN-GRAD-01"
        else:
            layer.load(running_mean=rm, running_var=rv)
            layer.train(False)
            dx, dg, db = ref.batchnorm_eval_backward(x, dy, rm, rv, weight, eps)
            t_dx, t_dg, t_db = tol.bn_eval_grads(x, dy, rm, rv, weight, eps, dtype, state["param_dtype"])
            clause = "BN-GRAD-03"
        out = layer.forward_backward(x, dy, dtype=dtype, layout=layout)
        compare_layout_run(seen, layout, out.dx, dx, t_dx, clause, "dx", what)
        compare_layout_run(seen, layout, out.dweight, dg, t_dg, clause, "dgamma", what)
        compare_layout_run(seen, layout, out.dbias, db, t_db, clause, "dbias", what)
        np.testing.assert_equal(out.y.shape, shape)


@pytest.mark.clause("BN-GRAD-01", "BN-GRAD-02")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_backward_without_parameters_at_an_offset(impl, dtype):
    """dx of BatchNorm1d(affine=False, track_running_stats=False) for a half input whose channels sit at an
    offset of 5 with std 0.1 equals the analytic backward within the bound for float32 statistics
    (BN-DTYPE-01), and sums to 0 per channel; torch saves the statistics in the half dtype here."""
    if 1 not in provided_dims(impl):
        pytest.skip("not provided: BatchNorm1d")
    kind = "BatchNorm1d"
    if not impl.expresses(kind, affine=False, track_running_stats=False, dtype=dtype):
        pytest.skip(f"not expressed: {kind}(affine=False, track_running_stats=False) with {dtype} input")
    rng = np.random.default_rng(20)
    x = np.array(5 + 0.1 * rng.standard_normal((2, 3)), dtype=np.float32)
    dy = np.array(rng.standard_normal((2, 3)), dtype=np.float32)
    x, dy = (round_to(a, dtype) for a in (x, dy))  # the values the layer receives
    layer = impl.batchnorm(1, 3, eps=1e-5, affine=False, track_running_stats=False)
    layer.train(True)
    eps = conventions.of(impl).attribute(1e-5)
    dx, _, _ = ref.batchnorm_train_backward(x, dy, None, eps)
    # constructed in float32 (the default), the layer holds no tensor: its parameter dtype is float32 (BN-DTYPE-01)
    t_dx, _, _ = tol.bn_train_grads(x, dy, None, eps, dtype, "float32")
    out = layer.forward_backward(x, dy, dtype=dtype, layout="contiguous")
    what = f"BatchNorm1d(3, affine=False, track_running_stats=False), training, {dtype} (2, 3) at offset 5"
    ph.assert_close(out.dx, dx, t_dx, "BN-GRAD-01", "dx", what)
    ph.assert_close(out.dx.sum(axis=0), np.zeros(3), t_dx.sum(axis=0), "BN-GRAD-02", "zero-sum", what)
