"""Folding an eval BatchNorm into the preceding convolution or linear layer (BN-FOLD-01, spec/clauses.toml
"Transformations"; dropnorm/reference/folding.py).

Every folding method the implementation offers (Implementation.fold_methods: for torch, fuse_conv_bn_eval /
fuse_linear_bn_eval, torch.ao.quantization.fuse_modules and torch.fx.experimental.optimization.fuse) is run
on every example: a method that raises, leaves the BatchNorm in place, or whose folded weights, bias or
output leave the derived bounds of dropnorm/reference/folding.py fails the clause.

The draws aim at what folding gets wrong: running variances of 0 and far below eps (eps is then all that
keeps 1/sqrt(rv + eps) finite), large |running_mean| (the folded bias absorbs -rm s), gamma 0 and negative,
affine=False, layers without bias, eps from 1e-10 to 1.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm.suite import checks as ph
from dropnorm.suite import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.spec.dtypes import round_to
from dropnorm.reference import folding

# BatchNorm kind -> the layers that precede it (Linear's (N, out_features) output is BatchNorm1d's input)
# and the transposed convolutions, folded along weight dim 1 (their output channels; issue 24)
PRECEDING = {"BatchNorm1d": ("Linear", "Conv1d", "ConvTranspose1d"), "BatchNorm2d": ("Conv2d", "ConvTranspose2d"),
             "BatchNorm3d": ("Conv3d", "ConvTranspose3d")}
FOLD_DTYPES = tuple(folding.UNIT_ROUNDOFF)  # float64, float32: the dtypes the bounds are derived for


def _vector(data, n, values, label):
    return np.array([data.draw(values, label=label) for _ in range(n)], dtype=np.float64)


def _running_var():
    """0, far below any eps (1e-30 .. 1e-12), or log-uniform 1e-6 .. 1e3."""
    return st.one_of(st.just(0.0), st.floats(-30.0, -12.0).map(lambda e: 10.0 ** e),
                     st.floats(-6.0, 3.0).map(lambda e: 10.0 ** e))


def _running_mean():
    """Small (normal-sized) or large, +-1e3 .. 1e6, of either sign."""
    small = st.floats(-3.0, 3.0)
    large = st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(3.0, 6.0)).map(lambda t: t[0] * 10.0 ** t[1])
    return st.one_of(small, large)


def _gamma():
    return st.one_of(st.sampled_from([0.0, 1.0, -1.0]), st.floats(-3.0, 3.0))


@pytest.mark.clause("BN-FOLD-01")
@hh.given(data=st.data())
def test_folding_equals_layer_then_eval_batchnorm(impl, data):
    """BN-FOLD-01: W' = W gamma/sqrt(rv + eps), b' = (b - rm) gamma/sqrt(rv + eps) + beta, and the folded
    layer's output equals the layer followed by the eval BatchNorm, within reference.folding.fold_bounds
    (float32 and float64), for every folding method of the implementation. A transposed convolution
    (ConvTranspose1d/2d/3d, weight (in, out, *kernel)) folds along weight dim 1, W'[:, o] = W[:, o] s_o
    (torch: fuse_conv_bn_eval(..., transpose=True), fuse_modules); a method without a transposed form is
    not provided for it."""
    methods = impl.fold_methods()
    if not methods:
        raise NotProvided(f"{impl.name} has no way to fold BatchNorm into a preceding layer")
    bn_kind = data.draw(hh.provided_kinds(impl, tuple(PRECEDING)), label="BatchNorm kind")
    kind = data.draw(st.sampled_from(PRECEDING[bn_kind]), label="preceding layer")
    dtype = data.draw(st.sampled_from(FOLD_DTYPES), label="dtype")
    out_c = data.draw(st.integers(1, 4), label="out channels")
    in_c = data.draw(st.integers(1, 4), label="in channels")
    n = data.draw(st.integers(1, 3), label="N")
    spatial = int(kind[-2]) if kind.startswith("Conv") else 0
    kernel = tuple(data.draw(st.integers(1, 3), label="kernel side") for _ in range(spatial))
    sides = tuple(k + data.draw(st.integers(0, 3), label="extra side") for k in kernel)
    rng = np.random.default_rng(data.draw(hh.seeds(), label="value seed"))
    x_scale = 10.0 ** data.draw(st.floats(-1.0, 2.0), label="log10 |x|")
    x = round_to(rng.normal(size=(n, in_c) + sides) * x_scale, dtype)
    # ConvTransposeNd's weight is (in, out, *kernel): the BatchNorm's channels are its dim 1
    w = round_to(rng.normal(size=((in_c, out_c) if folding.transposed(kind) else (out_c, in_c)) + kernel), dtype)
    bias = round_to(rng.normal(size=out_c), dtype) if data.draw(st.booleans(), label="layer bias") else None
    affine = data.draw(st.booleans(), label="affine")
    bn = {"running_mean": round_to(_vector(data, out_c, _running_mean(), "running_mean"), dtype),
          "running_var": round_to(_vector(data, out_c, _running_var(), "running_var"), dtype),
          "eps": 10.0 ** data.draw(st.floats(-10.0, 0.0), label="log10 eps"),
          "weight": round_to(_vector(data, out_c, _gamma(), "gamma"), dtype) if affine else None,
          "bias": round_to(rng.normal(size=out_c), dtype) if affine else None}
    args = (kind, w, bias, bn["running_mean"], bn["running_var"], bn["eps"], bn["weight"], bn["bias"])
    w_ref, b_ref = folding.fold_params(*args)
    y_ref = folding.conv_bn_eval(kind, x, *args[1:])
    bounds = folding.fold_bounds(kind, x, *args[1:], dtype=dtype)
    what = (f"{kind} -> {bn_kind}(affine={affine}, eps={bn['eps']:.3g}), {dtype}, x {x.shape}, weight {w.shape}, "
            f"layer bias {'none' if bias is None else 'yes'}, running_mean {bn['running_mean'].tolist()}, "
            f"running_var {bn['running_var'].tolist()}, gamma {None if bn['weight'] is None else bn['weight'].tolist()}")
    # the BatchNorm being folded, constructed through the traced implementation: the trace (and so the report
    # and the scope of a recorded deviation) names its kind, eps and affine
    impl.batchnorm(int(bn_kind[9]), out_c, eps=bn["eps"], affine=affine)
    for method in methods:
        try:
            out = impl.fold_conv_bn(kind, w, bias, bn, x, method=method, dtype=dtype)
        except NotProvided as e:
            if not folding.transposed(kind):
                raise
            # a method without a transposed form (torch.fx's fuse has no ConvTranspose pattern): the other
            # methods judge this example; counted as not provided for the report
            ctx = ph.context()
            ctx.not_provided[str(e)] = ctx.not_provided.get(str(e), 0) + 1
            continue
        except Exception as e:  # noqa: BLE001 - a folding method that fails is a finding
            ph.check(False, "BN-FOLD-01", "method-runs", f"{method} raised {type(e).__name__}: {e} [{what}]", severity="exception")
            continue
        ph.held("BN-FOLD-01", "method-runs")
        left = out.extra.get("batchnorm_left", [])
        ph.check(not left, "BN-FOLD-01", "folded", f"{method} left {left} in the folded model [{what}]", severity="wrong-state")
        ph.assert_close(out.extra["weight"], w_ref, bounds["weight"], "BN-FOLD-01", "folded-weight",
                        f"{method}: W' = W gamma/sqrt(rv + eps); {what}")
        ph.assert_close(out.extra["bias"], b_ref, bounds["bias"], "BN-FOLD-01", "folded-bias",
                        f"{method}: b' = (b - rm) gamma/sqrt(rv + eps) + beta; {what}")
        ph.assert_close(out.y, y_ref, bounds["output"], "BN-FOLD-01", "output",
                        f"{method}: folded layer vs {kind} then eval {bn_kind}; {what}")
