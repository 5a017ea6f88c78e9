"""AlphaDropout and FeatureAlphaDropout (AD-*): kept units a x + b, dropped units a alpha' + b, the mask
read back exactly from the output; keep rate; eval identity; p = 0 and 1; gradient a z dy; dtype,
layout and the in-place contract. Each test runs once per provided kind (hh.given's focus).

alpha' = -1.7580993408473766, a = (q (1 + alpha'^2 p))^(-1/2), b = -a alpha' p (reference/dropout.py
alpha_dropout_constants; ATen Dropout.cpp _dropout_impl computes the same). The self-normalising
property (mean 0, variance 1 kept for standard inputs) follows exactly from a, b and the keep rate
1 - p, so it is checked through them (AD-TRAIN-01 exactly, AD-TRAIN-02 by an exact binomial test)
rather than by sample moments, which would need millions of values for the same power.
"""
import math

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import checks as ph
from dropnorm import stats
from dropnorm import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.dtypes import UNIT_ROUNDOFF
from dropnorm.kinds import ALPHA_KINDS
from dropnorm.properties._family import (alpha_inputs, assert_alpha_dropout, check_eval_identity,
                                         check_kind_rejects_bad_p, construct, provided, read_alpha_mask)
from dropnorm.properties.test_dropout_stats import X, _statistical
from reference.dropout import alpha_dropout_constants


def _channelwise(kind: str) -> bool:
    return kind == "FeatureAlphaDropout"


def _shape(data, kind):
    """AlphaDropout: any rank 1-4; FeatureAlphaDropout: (N, C, *spatial), rank 2-5 (sides <= 4)."""
    lo, hi = (2, 5) if _channelwise(kind) else (1, 4)
    return data.draw(hh.dropout_shapes(lo, hi, max_side=4), label=f"{kind} shape")


def _p_inside():
    """p in (0, 1): the ends (p = 0, 1) are AD-EDGE-01."""
    specials = [1 / 3, 0.1, 0.5, 0.9, 1e-3, 0.99]
    return hh.grid_or(st.one_of(st.sampled_from(specials), st.floats(1e-3, 0.99)), specials)


@pytest.mark.clause("AD-API-01", "AD-API-02")
@pytest.mark.parametrize("kind", ALPHA_KINDS)
@pytest.mark.parametrize("condition", ["negative", "above-one", "infinite", "nan"])
def test_rejects_bad_p(impl, kind, condition):
    """As DO-API-01: ValueError at construction, naming p."""
    check_kind_rejects_bad_p(impl, kind, "AD-API-01", "AD-API-02", condition)


@pytest.mark.clause("AD-TRAIN-01", "AD-DTYPE-01")
@hh.given(data=st.data())
def test_kept_and_dropped_values(impl, data):
    """Every element is a x + b (kept) or a alpha' + b (dropped) within the dtype's roundings;
    FeatureAlphaDropout keeps or drops whole (n, c) planes; then the same in the drawn layout
    (AD-DTYPE-01), with the dtype kept and the input unchanged and unaliased (inplace=False)."""
    kind = data.draw(st.sampled_from(provided(impl, ALPHA_KINDS)), label="kind")
    shape = _shape(data, kind)
    p = data.draw(_p_inside(), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", hh.DTYPES), label="dtype")
    layout = data.draw(hh.layouts(len(shape)), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    x = alpha_inputs(seed, shape, dtype)
    layer = construct(impl, kind, p=p)
    layer.train(True)
    # the contiguous input first: a failure is blamed on AD-DTYPE-01 (layouts) only if it passed
    for run in ["contiguous"] + ([layout] if layout != "contiguous" else []):
        impl.seed(seed)
        out = layer.forward(x.copy(), dtype=dtype, layout=run)
        what = f"{kind}(p={p}), {shape}, {dtype}, {run}"
        ph.assert_dtype(out.dtype, dtype, "AD-DTYPE-01", what)
        assert_alpha_dropout(x, out.y, p, dtype, "AD-TRAIN-01" if run == "contiguous" else "AD-DTYPE-01", what,
                             channelwise=_channelwise(kind))
        ph.assert_equal(out.x_after, x, "AD-DTYPE-01", "input-unchanged", what)
        ph.check(not out.shares_input_memory, "AD-DTYPE-01", "no-alias",
                 f"got an output sharing the input's memory, expected a new tensor [{what}]", severity="wrong-state")


@pytest.mark.clause("AD-TRAIN-02", "AD-TRAIN-01")
@_statistical(checks=1, with_dtype=True)
def test_keep_rate(impl, p, seed, dtype):
    """The number of kept units is Binomial(n, 1-p): elements of AlphaDropout, (sample, channel) planes
    of FeatureAlphaDropout, read back exactly (every value checked as in AD-TRAIN-01); n from
    stats.keep_rate_n (the rarer outcome's rate off by min(0.01, r/2) detected with power >= 0.999)."""
    kind = provided(impl, ALPHA_KINDS)[0]  # one kind per run (hh.given's focus) where several are provided
    hh.assume_expressed(impl, kind, dtype=dtype)
    q = 1 - p
    cols = 512 if kind == "AlphaDropout" else 64
    rows = max(2, math.ceil(stats.keep_rate_n(q) / cols))
    shape = (rows, cols) if kind == "AlphaDropout" else (rows, cols, 1)
    x = np.full(shape, X)
    layer = construct(impl, kind, p=p)
    layer.train(True)
    impl.seed(seed)
    what = f"{kind}(p={p}), {dtype}"
    mask = assert_alpha_dropout(x, layer.forward(x, dtype=dtype).y, p, dtype, "AD-TRAIN-01", what,
                                channelwise=_channelwise(kind))
    ph.assert_binomial(stats.binomial(int(mask.sum()), mask.size, q), "AD-TRAIN-02", "keep-rate",
                       f"{what} keep rate")


@pytest.mark.clause("AD-EVAL-01")
@hh.given(data=st.data())
def test_eval_is_identity(impl, data):
    """Eval mode returns x bitwise for any p, twice in a row, without touching the RNG or the mode."""
    kind = data.draw(st.sampled_from(provided(impl, ALPHA_KINDS)), label="kind")
    shape = _shape(data, kind)
    p = data.draw(hh.probabilities(), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", hh.DTYPES), label="dtype")
    layout = data.draw(hh.layouts(len(shape)), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    x = alpha_inputs(seed, shape, dtype)
    check_eval_identity(impl, kind, p, x, shape, dtype, layout, seed, "AD-EVAL-01")


@pytest.mark.clause("AD-EDGE-01")
@pytest.mark.parametrize("p", [0.0, 1.0])
@hh.given(data=st.data(), dtype=hh.dtypes(), seed=hh.seeds())
def test_edge_p(impl, p, data, dtype, seed):
    """In training, p = 0 returns x bitwise and p = 1 returns exact zeros."""
    kind = data.draw(st.sampled_from(provided(impl, ALPHA_KINDS)), label="kind")
    hh.assume_expressed(impl, kind, dtype=dtype, p=p)
    shape = _shape(data, kind)
    x = alpha_inputs(seed, shape, dtype)
    layer = construct(impl, kind, p=p)
    layer.train(True)
    impl.seed(seed)
    y = layer.forward(x, dtype=dtype).y
    ph.assert_equal(y, x if p == 0 else np.zeros_like(x), "AD-EDGE-01", f"p={p}", f"{kind}(p={p}), {dtype}")


@pytest.mark.clause("AD-GRAD-01")
@hh.given(data=st.data())
def test_gradient_is_mask_times_a(impl, data):
    """dx = a z dy with z read back from the same call's output; dx = dy in eval. Tolerance: dy * fl(a)
    rounds a and the product, |error| <= (2u + u^2)|a dy|; 3u|a dy| (plus 2u(float32) for half dtypes
    computed in float32 first) leaves room for one more rounding."""
    kind = data.draw(st.sampled_from(provided(impl, ALPHA_KINDS)), label="kind")
    shape = _shape(data, kind)
    p = data.draw(_p_inside(), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", hh.DTYPES), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    x = alpha_inputs(seed, shape, dtype)
    dy = alpha_inputs(seed + 1, shape, dtype)
    a, _ = alpha_dropout_constants(p)
    u = UNIT_ROUNDOFF[dtype] + (2 * UNIT_ROUNDOFF["float32"] if dtype in ("float16", "bfloat16") else 0.0)
    for training in (True, False):
        layer = construct(impl, kind, p=p)
        layer.train(training)
        impl.seed(seed)
        out = layer.forward_backward(x, dy, dtype=dtype)
        what = f"{kind}(p={p}) backward, training={training}, {shape}, {dtype}"
        if not training:
            ph.assert_equal(out.dx, dy, "AD-GRAD-01", "eval-identity", what)
            continue
        kept = read_alpha_mask(x, out.y, p)  # the forward values themselves are AD-TRAIN-01's
        expected = np.where(kept, a * dy, 0.0)
        ph.assert_close(out.dx, expected, 3 * u * np.abs(expected), "AD-GRAD-01", "mask-times-a",
                        f"{what}; a = {a!r}")


@pytest.mark.clause("AD-INPLACE-01")
@hh.given(data=st.data())
def test_inplace_writes_input(impl, data):
    """inplace=True: after a training call the input holds the output. Each provided kind is covered
    (hh.given's focus), and a recorded defect is kept once per kind it is met on."""
    kind = data.draw(st.sampled_from(provided(impl, ALPHA_KINDS)), label="kind")
    if not impl.expresses(kind, inplace=True):
        raise NotProvided(f"{impl.name} cannot express {kind}(inplace=True)")
    shape = _shape(data, kind)
    p = data.draw(_p_inside(), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", hh.DTYPES), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    x = alpha_inputs(seed, shape, dtype)
    layer = construct(impl, kind, p=p, inplace=True)
    layer.train(True)
    impl.seed(seed)
    # a copy: the adapter may share x's memory, and the in-place write must not reach the x compared with
    out = layer.forward(x.copy(), dtype=dtype)
    ph.assert_equal(out.x_after, out.y, "AD-INPLACE-01", "input-holds-output",
                    f"{kind}(p={p}, inplace=True), training, {shape}, {dtype}")
