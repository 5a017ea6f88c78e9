"""The oracle's own check: the float64 reference against exact rational arithmetic.

Every conformance test compares an implementation with dropnorm/reference/ (float64 numpy), so
auditing the reference against itself (dropnorm/adapters/reference_impl.py) cannot fail
and is no evidence that the reference is right. This file is that evidence. For small
cases drawn by hypothesis it recomputes every formula the reference implements, from the
formulas of spec/clauses.toml, in exact arithmetic (fractions.Fraction: every float64 is
a rational), and requires the reference's float64 result to lie within a rigorous bound
on the rounding error of float64 evaluation:

  dropout / dropout2d forward and backward, train and eval (DO-TRAIN-01, DO-EVAL-01,
  DO-GRAD-01, D2-TRAIN-01, D2-GRAD-01) and the law of the mask draw (DO-TRAIN-02);
  batch statistics (mean, biased variance, n); batch-norm train forward (BN-TRAIN-01),
  eval forward (BN-EVAL-01), the running update in every convention it supports
  (momentum of the new batch or of the old value, unbiased or biased variance,
  momentum=None cumulative average; BN-TRAIN-02..05), and the backward dx, dgamma,
  dbeta in training (BN-GRAD-01; its closed form is also checked, exactly, to be the
  derivative of the forward) and in eval (BN-GRAD-03).

The bound (class Err): running error analysis carried out in exact arithmetic. Each
quantity is a pair (v, e): v the exact value of the formula, e a bound on the distance
of the reference's float64 result from v, pushed through the operations in the order the
reference evaluates them. With u = 2**-53 (float64 unit roundoff, round to nearest) and
eta = 2**-1075 (half the smallest subnormal spacing), one correctly rounded operation
on operands known to within their e gives

  a +- b:  e = ea + eb                                  + u (|v| + e_prop) + eta
  a * b:   e = |a| eb + |b| ea + ea eb                  + u (|v| + e_prop) + eta
  a / b:   e = (|a| eb + |b| ea) / (|b| (|b| - eb))     + u (|v| + e_prop) + eta   (|b| > eb)
  sqrt a:  e = ea / sqrt(a)  (+ the rational sqrt's own error, below) + u (|v| + e_prop) + eta
  sum of n terms, any order (numpy's pairwise sums included):
           e = sum e_i + gamma_{n-1} (sum |v_i| + sum e_i),  gamma_k = k u / (1 - k u)

(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., sections 2.2 and 4.2).
Square roots of rationals are bracketed with integer isqrt to 2**-SQRT_BITS relative
(lo <= sqrt(q) < hi); v takes lo and e includes hi - lo, so the comparison
|float64 result - v| <= e is rigorous. The bound is data dependent: it is tight for
well-conditioned cases and grows exactly where float64 evaluation truly loses accuracy
(e.g. the variance of values with a large common offset). test_the_bound_has_teeth
shows that plausible formula slips fall outside it.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from dropnorm import reference as ref

U = Fraction(1, 2 ** 53)        # float64 unit roundoff (round to nearest)
ETA = Fraction(1, 2 ** 1075)    # absolute rounding error bound in the subnormal range
SQRT_BITS = 300                 # rational square roots to 2**-300 relative
EXAMPLES = settings(max_examples=40, deadline=None)


def gamma(k: int) -> Fraction:
    return k * U / (1 - k * U)


def sqrt_bounds(q: Fraction) -> tuple[Fraction, Fraction]:
    """lo <= sqrt(q) < hi with hi - lo <= 2**-SQRT_BITS * sqrt(q) (q > 0)."""
    num, den = q.numerator, q.denominator          # sqrt(q) = sqrt(num * den) / den, num * den >= 1
    s = math.isqrt((num * den) << (2 * SQRT_BITS))
    scale = den << SQRT_BITS
    return Fraction(s, scale), Fraction(s + 1, scale)


class Err:
    """An exact value v and a bound e on |float64 result - v| (see the module docstring)."""
    __slots__ = ("v", "e")

    def __init__(self, v, e=Fraction(0)):
        self.v, self.e = Fraction(v), Fraction(e)

    @staticmethod
    def rounded(v: Fraction, prop: Fraction) -> "Err":
        return Err(v, prop + U * (abs(v) + prop) + ETA)

    def __add__(self, o):
        o = _err(o)
        return Err.rounded(self.v + o.v, self.e + o.e)

    def __sub__(self, o):
        o = _err(o)
        return Err.rounded(self.v - o.v, self.e + o.e)

    def __rsub__(self, o):
        return _err(o) - self

    def __mul__(self, o):
        o = _err(o)
        return Err.rounded(self.v * o.v, abs(self.v) * o.e + abs(o.v) * self.e + self.e * o.e)

    def __truediv__(self, o):
        o = _err(o)
        assert abs(o.v) > o.e, "divisor not bounded away from 0: the bound does not apply"
        prop = (abs(self.v) * o.e + abs(o.v) * self.e) / (abs(o.v) * (abs(o.v) - o.e))
        return Err.rounded(self.v / o.v, prop)

    def __rtruediv__(self, o):
        return _err(o) / self

    def sqrt(self):
        assert self.v > 0
        lo, hi = sqrt_bounds(self.v)
        # |sqrt(a') - sqrt(a)| = |a' - a| / (sqrt(a') + sqrt(a)) <= ea / sqrt(a) <= ea / lo; |sqrt(a) - lo| < hi - lo
        return Err.rounded(lo, self.e / lo + (hi - lo))


def _err(x) -> Err:
    return x if isinstance(x, Err) else Err(Fraction(x))   # a float64 or int operand is exact


def fsum(terms: list[Err]) -> Err:
    v = sum((t.v for t in terms), Fraction(0))
    e = sum((t.e for t in terms), Fraction(0))
    mag = sum((abs(t.v) for t in terms), Fraction(0)) + e
    return Err(v, e + gamma(max(len(terms) - 1, 0)) * mag + max(len(terms) - 1, 0) * ETA)


def fmean(terms: list[Err]) -> Err:
    return fsum(terms) / len(terms)


def agrees(got, expected: list[Err]) -> tuple[bool, str]:
    """Every float64 of `got` (flattened as `expected`) within its bound of the exact value."""
    got = [float(g) for g in np.asarray(got, dtype=np.float64).ravel()]
    assert len(got) == len(expected)
    for i, (g, x) in enumerate(zip(got, expected)):
        if not math.isfinite(g) or abs(Fraction(g) - x.v) > x.e:
            return False, f"element {i}: float64 {g!r}, exact {float(x.v)!r}, bound {float(x.e):.3g}"
    return True, ""


def assert_agrees(got, expected: list[Err], what: str) -> None:
    ok, why = agrees(got, expected)
    assert ok, f"{what}: {why}"


def rows(a: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) -> (C, n): each channel's values in a row, in C order of the rest."""
    return np.moveaxis(np.asarray(a, dtype=np.float64), 1, 0).reshape(a.shape[1], -1)


def channel_flat(per_channel: list[list[Err]], shape) -> list[Err]:
    """Per-channel rows back to the flattened (C order) layout of an (N, C, *spatial) array."""
    index = np.moveaxis(np.arange(int(np.prod(shape))).reshape(shape), 1, 0).reshape(shape[1], -1)
    out = [None] * index.size
    for c, row in enumerate(per_channel):
        for j, item in enumerate(row):
            out[index[c, j]] = item
    return out


# ---- the formulas, exactly (spec/clauses.toml), in the reference's order of evaluation ----

def exact_statistics(xs) -> tuple[Err, Err, list[Err]]:
    """mu = mean(x); d = x - mu; biased var = mean(d^2) (two passes, as batch_statistics)."""
    mu = fmean([Err(x) for x in xs])
    d = [Err(x) - mu for x in xs]
    return mu, fmean([di * di for di in d]), d


def exact_train_forward(xs, g, b, eps) -> list[Err]:
    mu, var, d = exact_statistics(xs)
    sigma = (var + eps).sqrt()
    return [Err(g) * (di / sigma) + b for di in d]


def exact_eval_forward(xs, rm, rv, g, b, eps) -> list[Err]:
    scale = Err(g) / (Err(rv) + eps).sqrt()
    return [scale * (Err(x) - rm) + b for x in xs]


def exact_running_update(rm, rv, t, xs, momentum, momentum_of, variance) -> tuple[Err, Err]:
    mu, var, _ = exact_statistics(xs)
    n = len(xs)
    w = 1 / Err(t + 1) if momentum is None else (Err(momentum) if momentum_of == "new" else 1 - Err(momentum))
    v = var * n / (n - 1) if variance == "unbiased" else var
    keep = 1 - w
    return keep * rm + w * mu, keep * rv + w * v


def exact_train_backward(xs, dys, g, eps) -> tuple[list[Err], Err, Err]:
    """BN-GRAD-01: dbeta = sum dy, dgamma = sum dy xhat, dx = g/sigma (dy - mean dy - xhat mean(dy xhat))."""
    n = len(xs)
    _, var, d = exact_statistics(xs)
    sigma = (var + eps).sqrt()
    xhat = [di / sigma for di in d]
    dy = [Err(y) for y in dys]
    prods = [a * h for a, h in zip(dy, xhat)]
    mean_dy, mean_dy_xhat = fsum(dy) / n, fsum(prods) / n
    factor = Err(g) / sigma
    return [factor * ((a - mean_dy) - h * mean_dy_xhat) for a, h in zip(dy, xhat)], fsum(prods), fsum(dy)


def jacobian_dx(xs, dys, g, sigma: Fraction) -> list[Fraction]:
    """dx = J^T dy from the derivative of the forward, independently of the closed form:
    y_j = g (x_j - mu)/sigma + b, d mu/d x_i = 1/n, d sigma/d x_i = (x_i - mu)/(n sigma), so
    d y_j/d x_i = g [(delta_ij - 1/n)/sigma - (x_j - mu)(x_i - mu)/(n sigma^3)]."""
    n = len(xs)
    x = [Fraction(v) for v in xs]
    dy = [Fraction(v) for v in dys]
    mu = sum(x) / n
    g = Fraction(g)
    return [sum(dy[j] * g * (((1 if i == j else 0) - Fraction(1, n)) / sigma
                             - (x[j] - mu) * (x[i] - mu) / (n * sigma ** 3)) for j in range(n))
            for i in range(n)]


def exact_eval_backward(xs, dys, rm, rv, g, eps) -> tuple[list[Err], Err, Err]:
    inv = 1 / (Err(rv) + eps).sqrt()
    dy = [Err(y) for y in dys]
    xhat = [(Err(x) - rm) * inv for x in xs]
    prods = [a * h for a, h in zip(dy, xhat)]
    return [(a * g) * inv for a in dy], fsum(prods), fsum(dy)


def exact_dropout(xs, mask, p) -> list[Err | None]:
    """Kept: x/(1-p), rounded as x * (1/(1-p)); dropped: exactly 0 (None: x is not finite and kept)."""
    if p == 1.0:
        return [Err(0) for _ in xs]
    scale = 1 / (1 - Err(p))
    out = []
    for x, z in zip(xs, mask):
        if not z:
            out.append(Err(0))
        else:
            out.append(scale * x if math.isfinite(x) else None)
    return out


# ---- strategies: small cases ----

values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-8, 1e3)
momenta = st.floats(0.0, 1.0)


@st.composite
def channel_arrays(draw, min_n=2):
    n_dim = draw(st.integers(1, 3))
    c = draw(st.integers(1, 2))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shape = (n_dim, c) + spatial
    if int(np.prod(shape)) // c < min_n:
        shape = (min_n, c) + spatial
    return draw(hnp.arrays(np.float64, shape, elements=values))


def vec(c, elements=values):
    return hnp.arrays(np.float64, (c,), elements=elements)


# ---- dropout ----

@EXAMPLES
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4),
                    elements=st.floats(min_value=-1e280, max_value=1e280)
                    | st.sampled_from([math.inf, -math.inf, math.nan])),
       p=st.floats(0.0, 1.0), data=st.data())
def test_dropout_forward_and_backward_exact(x, p, data):
    mask = data.draw(hnp.arrays(np.bool_, x.shape))
    expected = exact_dropout(x.ravel().tolist(), mask.ravel().tolist(), p)
    for fn in (ref.dropout_forward, ref.dropout_backward, ref.channel_dropout_forward, ref.channel_dropout_backward):
        got = fn(x, mask.astype(np.float64), p).ravel()
        finite = [i for i, e in enumerate(expected) if e is not None]
        assert_agrees(got[finite], [expected[i] for i in finite], f"{fn.__name__} p={p!r}")
        for i, e in enumerate(expected):
            if e is None:  # a kept non-finite value: inf * positive scale, nan stays nan
                assert np.array_equal(got[i], x.ravel()[i] * (1 / (1 - p)), equal_nan=True)
        np.testing.assert_array_equal(fn(x, mask, p, training=False), x)  # eval: the identity, exactly


@EXAMPLES
@given(x=channel_arrays(min_n=1), p=st.floats(0.0, 1.0), data=st.data())
def test_dropout2d_exact(x, p, data):
    mask = data.draw(hnp.arrays(np.bool_, x.shape[:2])).astype(np.float64)
    mask = mask.reshape(x.shape[:2] + (1,) * (x.ndim - 2))
    full = np.broadcast_to(mask, x.shape)
    expected = exact_dropout(x.ravel().tolist(), full.ravel().tolist(), p)
    assert_agrees(ref.channel_dropout_forward(x, mask, p), expected, "dropout2d forward")
    assert_agrees(ref.channel_dropout_backward(x, mask, p), expected, "dropout2d backward")


@EXAMPLES
@given(seed=st.integers(0, 2 ** 32 - 1), p=st.floats(0.0, 1.0),
       shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=4))
def test_mask_draw_keeps_with_probability_one_minus_p_exactly(seed, p, shape):
    """The draw rule keep <=> u >= p with numpy's u = k / 2**53 (k uniform on 0 .. 2**53 - 1) keeps with
    probability exactly (2**53 - ceil(p 2**53)) / 2**53, within 2**-53 of 1 - p (DO-TRAIN-02)."""
    u = np.random.default_rng(seed).random(shape)
    grid = [Fraction(float(v)) * 2 ** 53 for v in u.ravel()]
    assert all(g.denominator == 1 for g in grid), "numpy's doubles are not on the k / 2**53 grid"
    mask = ref.sample_mask(np.random.default_rng(seed), shape, p)
    np.testing.assert_array_equal(mask, (u >= p).astype(np.float64))
    keep = (2 ** 53 - math.ceil(Fraction(p) * 2 ** 53)) / Fraction(2 ** 53)
    assert 0 <= (1 - Fraction(p)) - keep < Fraction(1, 2 ** 53)
    channel = ref.sample_channel_mask(np.random.default_rng(seed), shape, p)
    np.testing.assert_array_equal(channel.reshape(shape[:2]), (u.reshape(-1)[:shape[0] * shape[1]]
                                                               .reshape(shape[:2]) >= p).astype(np.float64))


# ---- batch norm ----

@EXAMPLES
@given(x=channel_arrays(min_n=1))
def test_batch_statistics_exact(x):
    mean, var, n = ref.batch_statistics(x)
    assert n == x.size // x.shape[1]
    stats = [exact_statistics(r) for r in rows(x)]
    assert_agrees(mean, [s[0] for s in stats], "mean")
    assert_agrees(var, [s[1] for s in stats], "biased variance")


@EXAMPLES
@given(x=channel_arrays(), eps=positive, affine=st.booleans(), data=st.data())
def test_train_forward_exact(x, eps, affine, data):
    c = x.shape[1]
    g, b = (data.draw(vec(c)), data.draw(vec(c))) if affine else (np.ones(c), np.zeros(c))
    expected = [exact_train_forward(r, g[k], b[k], eps) for k, r in enumerate(rows(x))]
    got = ref.batchnorm_train_forward(x, g if affine else None, b if affine else None, eps)
    assert_agrees(got, channel_flat(expected, x.shape), "train forward")


@EXAMPLES
@given(x=channel_arrays(min_n=1), eps=positive, affine=st.booleans(), data=st.data())
def test_eval_forward_exact(x, eps, affine, data):
    c = x.shape[1]
    rm, rv = data.draw(vec(c)), data.draw(vec(c, st.floats(0.0, 1e3)))
    g, b = (data.draw(vec(c)), data.draw(vec(c))) if affine else (np.ones(c), np.zeros(c))
    expected = [exact_eval_forward(r, rm[k], rv[k], g[k], b[k], eps) for k, r in enumerate(rows(x))]
    got = ref.batchnorm_eval_forward(x, rm, rv, g if affine else None, b if affine else None, eps)
    assert_agrees(got, channel_flat(expected, x.shape), "eval forward")


@EXAMPLES
@given(x=channel_arrays(min_n=1), t=st.integers(0, 10 ** 6), data=st.data(),
       convention=st.sampled_from([("new", "unbiased"), ("new", "biased"), ("old", "unbiased"), ("old", "biased"),
                                   (None, "unbiased"), (None, "biased")]))
def test_running_update_exact(x, t, data, convention):
    """Every convention: momentum of the new batch or of the old value, (un)biased, momentum=None."""
    momentum_of, variance = convention
    momentum = None if momentum_of is None else data.draw(momenta)
    c = x.shape[1]
    if variance == "unbiased" and x.size // c < 2:
        with pytest.raises(ValueError, match="n >= 2"):
            ref.running_update(np.zeros(c), np.ones(c), t, x, momentum, momentum_of=momentum_of or "new",
                               variance=variance)
        return
    rm, rv = data.draw(vec(c)), data.draw(vec(c, st.floats(0.0, 1e3)))
    got_rm, got_rv, got_t = ref.running_update(rm, rv, t, x, momentum, momentum_of=momentum_of or "new",
                                               variance=variance)
    assert got_t == t + 1
    expected = [exact_running_update(rm[k], rv[k], t, r, momentum, momentum_of, variance)
                for k, r in enumerate(rows(x))]
    assert_agrees(got_rm, [e[0] for e in expected], f"running mean {convention}")
    assert_agrees(got_rv, [e[1] for e in expected], f"running var {convention}")


@EXAMPLES
@given(x=channel_arrays(), eps=positive, affine=st.booleans(), data=st.data())
def test_train_backward_exact(x, eps, affine, data):
    c = x.shape[1]
    dy = data.draw(hnp.arrays(np.float64, x.shape, elements=values))
    g = data.draw(vec(c)) if affine else np.ones(c)
    dx, dgamma, dbeta = ref.batchnorm_train_backward(x, dy, g if affine else None, eps)
    expected = [exact_train_backward(r, d, g[k], eps) for k, (r, d) in enumerate(zip(rows(x), rows(dy)))]
    assert_agrees(dx, channel_flat([e[0] for e in expected], x.shape), "train dx")
    assert_agrees(dgamma, [e[1] for e in expected], "train dgamma")
    assert_agrees(dbeta, [e[2] for e in expected], "train dbeta")
    # the closed form is the derivative of the forward: exactly equal, for the same rational sigma
    for k, (r, d) in enumerate(zip(rows(x), rows(dy))):
        _, var, _ = exact_statistics(r)
        sigma = sqrt_bounds(var.v + Fraction(eps))[0]
        closed = Err(g[k]).v / sigma
        mu = sum(Fraction(v) for v in r) / len(r)
        xhat = [(Fraction(v) - mu) / sigma for v in r]
        dyf = [Fraction(v) for v in d]
        m_dy, m_dyx = sum(dyf) / len(r), sum(a * h for a, h in zip(dyf, xhat)) / len(r)
        assert [closed * (a - m_dy - h * m_dyx) for a, h in zip(dyf, xhat)] == jacobian_dx(r, d, g[k], sigma)


@EXAMPLES
@given(x=channel_arrays(min_n=1), eps=positive, affine=st.booleans(), data=st.data())
def test_eval_backward_exact(x, eps, affine, data):
    c = x.shape[1]
    dy = data.draw(hnp.arrays(np.float64, x.shape, elements=values))
    rm, rv = data.draw(vec(c)), data.draw(vec(c, st.floats(0.0, 1e3)))
    g = data.draw(vec(c)) if affine else np.ones(c)
    dx, dgamma, dbeta = ref.batchnorm_eval_backward(x, dy, rm, rv, g if affine else None, eps)
    expected = [exact_eval_backward(r, d, rm[k], rv[k], g[k], eps) for k, (r, d) in enumerate(zip(rows(x), rows(dy)))]
    assert_agrees(dx, channel_flat([e[0] for e in expected], x.shape), "eval dx")
    assert_agrees(dgamma, [e[1] for e in expected], "eval dgamma")
    assert_agrees(dbeta, [e[2] for e in expected], "eval dbeta")


# ---- the check itself has power ----

def test_the_bound_has_teeth():
    """Plausible slips in the formulas fall outside the bound on a fixed, ordinary case, and
    the bound there is within a few hundred ulps of the values."""
    rng = np.random.default_rng(7)
    x, dy = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    g, b, eps = np.array([1.5, -0.7]), np.array([0.25, 2.0]), 1e-3
    axes = (0, 2)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    gb, bb = g.reshape(1, -1, 1), b.reshape(1, -1, 1)
    fwd = channel_flat([exact_train_forward(r, g[k], b[k], eps) for k, r in enumerate(rows(x))], x.shape)
    assert max(float(e.e / max(abs(e.v), 1)) for e in fwd) < 1e-13
    assert agrees(ref.batchnorm_train_forward(x, g, b, eps), fwd)[0]
    n = 12
    slips = {
        "unbiased variance": gb * (x - mu) / np.sqrt(var * n / (n - 1) + eps) + bb,
        "eps outside the root": gb * (x - mu) / (np.sqrt(var) + eps) + bb,
        "eps off by 1e-9 relative": gb * (x - mu) / np.sqrt(var + eps * (1 + 1e-9)) + bb,
        "(x + beta) * gamma": gb * ((x - mu) / np.sqrt(var + eps) + bb),
    }
    for name, y in slips.items():
        assert not agrees(y, fwd)[0], name
    dx_exact = channel_flat([exact_train_backward(r, d, g[k], eps)[0]
                             for k, (r, d) in enumerate(zip(rows(x), rows(dy)))], x.shape)
    stats_as_constants = gb / np.sqrt(var + eps) * dy          # the classic backward bug
    assert not agrees(stats_as_constants, dx_exact)[0]
    rm, rv = np.array([0.5, -1.0]), np.array([2.0, 0.5])
    new = [exact_running_update(rm[k], rv[k], 3, r, 0.1, "new", "unbiased") for k, r in enumerate(rows(x))]
    got = ref.running_update(rm, rv, 3, x, 0.1)
    assert agrees(got[0], [e[0] for e in new])[0] and agrees(got[1], [e[1] for e in new])[0]
    swapped = ref.running_update(rm, rv, 3, x, 0.1, momentum_of="old")
    biased = ref.running_update(rm, rv, 3, x, 0.1, variance="biased")
    assert not agrees(swapped[0], [e[0] for e in new])[0]
    assert not agrees(biased[1], [e[1] for e in new])[0]
    drop = exact_dropout([3.0, -1.5], [1, 1], 0.3)
    assert agrees(ref.dropout_forward([3.0, -1.5], [1, 1], 0.3), drop)[0]
    assert not agrees(np.array([3.0, -1.5]) / 0.3, drop)[0]                      # 1/p instead of 1/(1-p)
    assert not agrees(np.array([3.0, -1.5]) * (1 + 1e-15) / 0.7, drop)[0]     # a few ulps off
