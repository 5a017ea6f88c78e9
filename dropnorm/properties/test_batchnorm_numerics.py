"""BatchNorm on numerically hard inputs (BN-NUM-01, BN-NUM-02, BN-NUM-03; issue 14).

Hard inputs (the terms of spec/clauses.toml, BN-NUM-01):
  offset    an exact shift x + c of a spread-1 input: |c| = 10^U(2, TOP) with TOP past the
            dtype's range of exact integers (float32: 1e8 > 2^24; float64: 1e17 > 2^53;
            float16: 10^3.5 > 2^11; bfloat16: 1e3 > 2^8). x is first rounded to multiples of
            ulp(2c), so that x + c is exact and BN(x + c) = BN(x) holds exactly: the
            reference is BN(x), the unshifted input (shift invariance).
  tiny-variance  spread sqrt(eps)/10 around 1.
  constant  every channel constant, at +-10^(e + U(-2, 0)), e drawn in [2, TOP].
Pinned examples (every seed runs them): the inputs of pytorch/pytorch#5410.
"""
import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.suite.bn_setup import draw_case, provided_dims
from dropnorm.spec.dtypes import round_to

# log10 of the largest offset drawn per dtype: past 2^p, the dtype's range of exact integers.
TOP = {"float64": 17.0, "float32": 8.0, "float16": 3.5, "bfloat16": 3.0}


def _ulp(c: float, dtype: str) -> float:
    """The spacing of dtype values at |c| (2^(e - p + 1) with |c| in [2^e, 2^(e+1)))."""
    p = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}[dtype]
    return 2.0 ** (np.floor(np.log2(abs(c))) - p + 1)


def _bshape(shape):
    return (1, shape[1]) + (1,) * (len(shape) - 2)


def hard_input(kind: str, exponent: float, seed: int, shape, dtype: str, eps: float):
    """(input, unshifted input whose BN is the same) for one hard kind (module docstring)."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    if kind == "offset":
        shift = np.sign(rng.uniform(-1, 1, size=c)) * 10.0 ** (exponent + rng.uniform(-0.5, 0.0, size=c))
        # c and x0 multiples of ulp(2c), |x0| <= |c|/2: x0 + c is exact, even across a binade
        q = np.array([_ulp(2 * s, dtype) for s in shift])
        shift = np.round(shift / q) * q
        q, lim = q.reshape(_bshape(shape)), np.abs(shift).reshape(_bshape(shape)) / 2
        x0 = np.clip(np.round(inputs.channels(seed, shape, "float64", offset=1.0) / q) * q, -lim, lim)
        x = x0 + shift.reshape(_bshape(shape))
        assert np.array_equal(round_to(x, dtype), x) and np.array_equal(round_to(x0, dtype), x0)
        return x, x0
    if kind == "tiny-variance":
        x = inputs.channels(seed, shape, dtype, offset=1.0, spread=np.sqrt(eps) / 10)
        return x, x
    v = round_to(np.sign(rng.uniform(-1, 1, size=c)) * 10.0 ** (exponent + rng.uniform(-2.0, 0.0, size=c)), dtype)
    x = np.broadcast_to(v.reshape(_bshape(shape)), shape).copy()
    return x, x


HARD_KINDS = ("offset", "tiny-variance", "constant")


def _hard_run(impl, data, kind=None, case=None):
    """One training call on a hard input: (x, x0, output, state, what, eps, kind, dtype, case). kind: drawn
    when None; case: a fresh layer of that case (drawn when None)."""
    if kind is None:
        kind = data.draw(st.sampled_from(HARD_KINDS), label="kind")
    if case is None:
        case = draw_case(impl, data, track=True, affine=False, dtypes=("float32", "float64", "float16", "bfloat16"))
        layer = case.layer
    else:
        layer = case.fresh(impl)
    exponent = data.draw(st.floats(2.0, TOP[case.dtype]), label=f"log10 offset ({kind})")
    x, x0 = hard_input(kind, exponent, case.seed, case.shape, case.dtype, case.eps)
    layer.train(True)
    out = layer.forward(x, dtype=case.dtype, layout=case.layout)
    what = f"{case.describe()}, {kind} input" + (f", |offset| up to 1e{exponent:.2f}" if kind != "tiny-variance" else "")
    return x, x0, out, layer.state(), what, case.eps, kind, case.dtype, case


# Separate tests: a MUST failure must not hide behind a SHOULD failure of the same example.
@pytest.mark.clause("BN-NUM-01")
@hh.given(data=st.data())
def test_numerically_hard_inputs(impl, data):
    """Finite output, |xhat| <= sqrt(n)(1 + tau) widened by a correct centre's rounding (tol.bn_xhat_bound),
    |xhat| <= 1 + tau on a constant channel, running variance >= 0. Every example runs each hard kind on a fresh layer of its case (a drawn kind left
    constant-channel unrun on a kind in 4 of 9 quick runs: per-condition coverage)."""
    case = None
    for hard in HARD_KINDS:
        x, _, out, state, what, _, kind, dtype, case = _hard_run(impl, data, hard, case)
        _check_hard_run(x, out, state, what, kind, dtype, case.eps)


def _check_hard_run(x, out, state, what, kind, dtype, eps):
    n = x.size // x.shape[1]
    y = np.asarray(out.y, np.float64)
    ph.check(bool(np.all(np.isfinite(y))), "BN-NUM-01", "finite", f"got non-finite output [{what}]")
    tau = tol.bn_xhat_tau(n, dtype)
    top = float(np.max(np.abs(np.where(np.isfinite(y), y, 0.0)), initial=0.0))
    if kind == "constant":
        ph.check(top <= 1 + tau, "BN-NUM-01", "constant-channel",
                 f"got max |xhat| {top:.6g} on constant channels, expected 0 (at most 1 + {tau:.2g}, the "
                 f"rounding of a consistent normalisation) [{what}]", observed=top, expected=f"<= {1 + tau:.6g}")
    # per channel: sqrt(n) (1 + tau), plus what a correct running centre may add (tol.bn_xhat_bound)
    axes = (0,) + tuple(range(2, y.ndim))
    tops = np.max(np.abs(np.where(np.isfinite(y), y, 0.0)), axis=axes, initial=0.0)
    bounds = tol.bn_xhat_bound(x, eps, dtype)
    c = int(np.argmax(tops / bounds))
    ph.check(bool(np.all(tops <= bounds)), "BN-NUM-01", "bounded",
             f"got max |xhat| {tops[c]:.6g} on channel {c}, expected <= {bounds[c]:.6g} (sqrt(n) (1 + tau) = "
             f"{np.sqrt(n) * (1 + tau):.6g}, n = {n}, widened by the rounding of a correct centre) [{what}]",
             observed=float(tops[c]), expected=f"<= {bounds[c]:.6g}")
    rv = state["running_var"]
    ph.check(bool(np.all(rv >= 0)), "BN-NUM-01", "running-var-nonnegative", f"got running_var {rv} [{what}]")


@pytest.mark.clause("BN-NUM-03")
@hh.given(data=st.data())
def test_variance_keeps_half_the_digits(impl, data):
    """The output error stays within the MUST tolerance: the two-pass bound, or a one-pass
    variance only while var + eps keeps half of the working digits."""
    x, x0, out, _, what, eps, kind, dtype, _ = _hard_run(impl, data)
    atol, _ = tol.bn_train_output(x, None, None, eps, dtype, probabilistic=kind != "constant")
    ph.assert_close(out.y, ref.batchnorm_train_forward(x0, eps=eps), atol, "BN-NUM-03", "half-digits", what)


@pytest.mark.clause("BN-NUM-02")
@hh.given(data=st.data())
def test_accuracy_on_hard_inputs(impl, data):
    """The error stays within the two-pass bound, linear in the conditioning (and, on the
    shifted inputs, BN(x + c) agrees with BN(x) within it). Every example runs each hard kind on a fresh
    layer of its case, so that shift-invariance and two-pass-accuracy run on every kind (a drawn kind left
    two-pass-accuracy unrun on a kind in 1 of 9 quick runs: per-condition coverage)."""
    case = None
    for hard in HARD_KINDS:
        x, x0, out, _, what, eps, kind, dtype, case = _hard_run(impl, data, hard, case)
        atol, _ = tol.bn_train_output(x, None, None, eps, dtype, one_pass=False, probabilistic=kind != "constant")
        ph.assert_close(out.y, ref.batchnorm_train_forward(x0, eps=eps), atol, "BN-NUM-02",
                        "shift-invariance" if kind == "offset" else "two-pass-accuracy", what)


# pytorch/pytorch#5410 and the probe of issue 14: constant float32 channels at large offsets.
PINNED_5410 = [
    # (dims, shape, value): every channel constant at `value`.
    (2, (8, 2, 4, 4), 1e7),
    (1, (64, 3), 1.234567e8),
]


@pytest.mark.clause("BN-NUM-01")
@pytest.mark.parametrize("dims, shape, value", PINNED_5410, ids=["2d-1e7", "1d-1.234567e8"])
def test_pytorch_5410_constant_channels(impl, dims, shape, value):
    """A constant channel at a large float32 offset: BN gives beta (|xhat| <= 1 + tau)."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    layer = impl.batchnorm(dims, shape[1])
    layer.train(True)
    x = np.full(shape, round_to(np.array(value), "float32"))
    out = layer.forward(x, dtype="float32")
    y = np.asarray(out.y, np.float64)
    n = x.size // shape[1]
    tau = tol.bn_xhat_tau(n, "float32")
    top = float(np.max(np.abs(y)))
    rv = np.asarray(layer.state()["running_var"], np.float64)
    what = (f"BatchNorm{dims}d({shape[1]}) defaults, training, float32 x of shape {shape} all {value:g} "
            f"(pytorch/pytorch#5410); running_var after the step {rv.tolist()} (exact: 0.9)")
    ph.check(bool(np.all(np.isfinite(y))), "BN-NUM-01", "finite", f"got non-finite output [{what}]")
    ph.check(top <= 1 + tau, "BN-NUM-01", "constant-channel",
             f"got max |y| {top:.6g}, expected beta = 0 (at most 1 + {tau:.2g}) [{what}]",
             observed=top, expected=f"<= {1 + tau:.6g}")
