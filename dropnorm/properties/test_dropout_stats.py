"""Dropout and channel-dropout randomness: keep rate, moments and independence (DO-TRAIN-02..05,
DO-MOMENT-01 for Dropout; D2-TRAIN-03, D2-TRAIN-04 for every channel kind, Dropout1d, Dropout2d and
Dropout3d, each clause tested here and nowhere else).

Exact tests at the per-check alpha of dropnorm/spec/stats.py (FAMILY_ALPHA 1e-6 per run,
Bonferroni over MAX_STAT_CHECKS; the `statistical` marker counts the checks per example).
The power numbers below are computed by dropnorm/spec/stats.py (`python -m dropnorm.spec.stats`).

Keep rates: exact two-sided binomial tests. p is drawn from all of [1e-4, 1 - 1e-4]
(p = 0 and 1 exactly are DO-P0-01 and DO-P1-01), stratified: the ends, the neighbourhood
of 0.5 and the whole interval; every test also runs the explicit examples below, so that a
p near 0.5 (where p and 1-p coincide) and p near both ends are tried in the same run. n
comes from stats.keep_rate_n: the rarer outcome's rate r = min(p, 1-p) off by
min(0.01, r/2) (at least 5e-4) is detected with power >= 0.999.

Dependence: exact conditional (Fisher, equal-tailed) tests of independence on 2x2 tables
of disjoint pairs of mask bits (stats.independence); keep-rate errors do not move them.
With 2^17 pairs a correlation rho between the bits of a pair is detected with power >=
0.999 when rho >= 0.026 (0.1 <= q <= 0.9), 0.028 (q = 0.05 or 0.95), 0.033 (q = 0.02),
0.039 (q = 0.01); a shared draw (rho = 1) with power 1.000 for every q >= 1e-3 (0.997 at
rho = 0.5, q = 1e-4). Mask bits are read back from outputs of a constant nonzero input.
"""
import math

import numpy as np
import pytest
from hypothesis import example, settings

from dropnorm.suite import checks as ph
from dropnorm.spec import stats
from dropnorm.spec.kinds import CHANNEL_KINDS, spatial_dims
from dropnorm.suite import strategies as hh
from dropnorm.properties._family import construct, provided

X = 1.5  # exactly representable in every dtype; nonzero, so y != 0 <=> kept
COLS = 512
SIDE = 512  # dependence masks are SIDE x SIDE: 2^17 disjoint pairs per check
LAGS = (1, 2, 3, 4)  # element lags in the logical order of a contiguous input
MEMORY_LAGS = (1, 2)  # element lags of a transposed input, in memory order and in logical order
CALLS = 4  # successive calls: lags 1 (1-2, 2-3, 3-4) and 2 (1-3, 2-4)

# Explicit examples, run in every profile before the generated ones: p exactly 0.5 and near it,
# and near both ends (in float16 and bfloat16 where the test draws a dtype). Each runs once per test; in
# the channel tests hh.given deals them out over the kinds (Dropout1d gets 0.5 and 0.999, and so on).
EXPLICIT_P = (0.5, 0.47, 0.0015, 0.999)
EXPLICIT_DTYPE = {0.5: "float32", 0.47: "bfloat16", 0.0015: "float16", 0.999: "bfloat16"}


def _stat_settings():
    """hh.stat_settings with the explicit examples counted: explicit + generated <= STAT_MAX_EXAMPLES."""
    s = hh.stat_settings()
    return settings(s, max_examples=max(1, s.max_examples - len(EXPLICIT_P)))


def _explicit(with_dtype=False):
    def decorate(test):
        for i, p in enumerate(reversed(EXPLICIT_P)):
            kw = dict(p=p, seed=1000 + i)
            if with_dtype:
                kw["dtype"] = EXPLICIT_DTYPE[p]
            test = example(**kw)(test)
        return test
    return decorate


def _statistical(checks: int, with_dtype: bool = False):
    """The decorators of a statistical test over (p, seed[, dtype]): the `statistical` marker with its
    `checks` per example, _stat_settings(), the explicit examples (_explicit) and hh.given with p from
    hh.keep_probabilities(), seed from hh.seeds() and, with_dtype, dtype from hh.dtypes()."""
    marker = pytest.mark.statistical(checks=checks)
    stat_settings, explicit = _stat_settings(), _explicit(with_dtype)
    strategies = dict(p=hh.keep_probabilities(), seed=hh.seeds())
    if with_dtype:
        strategies["dtype"] = hh.dtypes()

    def decorate(test):
        return marker(stat_settings(explicit(hh.given(**strategies)(test))))
    return decorate


def _masks(impl, p, rows, cols, seed, dtype="float32", calls=1, layout="contiguous", check_scale=False):
    """Dropout's keep masks (rows x cols) of `calls` successive training calls on a constant input (one
    seed). With check_scale, every element is also checked to be 0 or x/(1-p) (DO-TRAIN-01)."""
    layer = impl.dropout(p=p)
    layer.train(True)
    impl.seed(seed)
    x = np.full((rows, cols), X)
    out = []
    for i in range(calls):
        y = layer.forward(x, dtype=dtype, layout=layout).y
        if check_scale:
            out.append(ph.assert_inverted_dropout(x, y, p, dtype, "DO-TRAIN-01", f"Dropout(p={p}) call {i + 1}, {dtype}"))
        else:
            out.append(ph.read_mask(np.asarray(y).reshape(rows, cols)))
    return out


def _channel_masks(impl, kind, p, n, c, seed, dtype="float32", calls=1, check_scale=False):
    """Channel masks (N x C) of `calls` successive training calls of `kind` (Dropout1d, 2d or 3d) on a
    constant (N, C, 1, ...) input (one seed), so that each (sample, channel) plane is one element. With
    check_scale, every element is also checked to be 0 or x/(1-p), whole planes kept or dropped (D2-TRAIN-01)."""
    layer = construct(impl, kind, p=p)
    layer.train(True)
    impl.seed(seed)
    x = np.full((n, c) + (1,) * spatial_dims(kind), X)
    out = []
    for i in range(calls):
        y = layer.forward(x, dtype=dtype, layout="contiguous").y
        if check_scale:
            out.append(ph.assert_inverted_dropout(x, y, p, dtype, "D2-TRAIN-01", f"{kind}(p={p}) call {i + 1}, "
                                                  f"{dtype}", channelwise=True).reshape(n, c))
        else:
            out.append(ph.read_mask(np.asarray(y).reshape(n, c)))
    return out


def _rows_for(n: int, cols: int = COLS) -> int:
    return max(2, math.ceil(n / cols))


def _independent(a, b, clause, condition, what):
    ph.assert_binomial(stats.independence(a, b), clause, condition, what)


def _row_pairs(mask, seed):
    """Pairs of rows: adjacent (2i, 2i+1) and (2i+1, 2i+2), and a random perfect matching."""
    perm = np.random.default_rng(seed).permutation(mask.shape[0])
    r = perm[: perm.size // 2 * 2]
    return {"adjacent rows (2i, 2i+1)": stats.lag_pairs(np.arange(mask.shape[0]), 1, 0),
            "adjacent rows (2i+1, 2i+2)": stats.lag_pairs(np.arange(mask.shape[0]), 1, 1),
            "random row pairs": (r[0::2], r[1::2])}


def _call_pairs(masks):
    return {f"calls {i + 1} and {j + 1}": (masks[i], masks[j])
            for lag in (1, 2) for i in range(len(masks) - lag) for j in (i + lag,)}


def _check_channel_keep_rate(mask, p, kind, dtype):
    """D2-TRAIN-03: the number of kept (sample, channel) planes of `kind`'s N x C mask is Binomial(N*C, 1-p)."""
    ph.assert_binomial(stats.binomial(int(mask.sum()), mask.size, 1 - p), "D2-TRAIN-03", "channel-keep-rate",
                       f"{kind}(p={p}) channel keep rate, {dtype}")


def _check_channel_draws(masks, seed, what):
    """D2-TRAIN-04 on the N x C channel masks of successive calls: the first mask's samples (adjacent
    pairs, a random matching), its channels (lags 1 and 2, both offsets), and the calls (lags 1 and 2)."""
    first = masks[0]
    for name, (i, j) in _row_pairs(first, seed).items():
        _independent(first[i.ravel()], first[j.ravel()], "D2-TRAIN-04", "sample-agreement",
                     f"{what} {name.replace('rows', 'samples').replace('row', 'sample')}")
    for lag in (1, 2):
        for offset in (0, lag):
            ca, cb = stats.lag_pairs(np.arange(first.shape[1]), lag, offset)
            _independent(first[:, ca.ravel()], first[:, cb.ravel()], "D2-TRAIN-04", "channel-agreement",
                         f"{what} channels (c, c+{lag}) from offset {offset}")
    for name, (a, b) in _call_pairs(masks).items():
        _independent(a, b, "D2-TRAIN-04", "call-agreement", f"{what} {name}")


@pytest.mark.clause("DO-TRAIN-02", "DO-TRAIN-01")
@_statistical(checks=1, with_dtype=True)
def test_keep_rate(impl, p, seed, dtype):
    """The number of kept elements is Binomial(n, 1-p) (exact two-sided test), in every dtype.

    n = stats.keep_rate_n(1-p): 218,797 at p = 0.5, 20,539 at p = 0.02, 424,433 at p = 0.001
    (and below); power >= 0.999 against a keep rate off by min(0.01, r/2), r = min(p, 1-p),
    at least 5e-4. The scale of every kept element is checked too, in the same dtype (DO-TRAIN-01).
    """
    hh.assume_expressed(impl, "Dropout", dtype=dtype)
    q = 1 - p
    n = stats.keep_rate_n(q)
    (mask,) = _masks(impl, p, _rows_for(n), COLS, seed, dtype, check_scale=True)
    ph.assert_binomial(stats.binomial(int(mask.sum()), mask.size, q), "DO-TRAIN-02", "keep-rate",
                       f"Dropout(p={p}) keep rate, {dtype}")


@pytest.mark.clause("DO-MOMENT-01")
@_statistical(checks=2)
def test_moments_preserved(impl, p, seed):
    """mean(y/x) must be 1 and mean((y/x)^2) must be 1/q, each within the exact binomial interval.

    Under the clause y/x is 0 or 1/q and the number kept k ~ Binomial(n, q), so both
    n q mean(y/x) and n q^2 mean((y/x)^2) equal k: each must lie in the level-alpha acceptance
    interval [lo, hi] of Binomial(n, q) (widened by 1e-9 n for float64 rounding). Then
    Var[y]/x^2 = E[(y/x)^2] - E[y/x]^2 = 1/q - 1 = p/q. Power (n = stats.keep_rate_n(q)): a
    second moment (1 + e)/q, i.e. Var[y] = (1 + e') x^2 p/q with e = e' p, with the mean right,
    is detected with power >= 0.999 when e' p q >= min(0.01, r/2): e' >= 0.04 at p = 0.5,
    0.11 at p = 0.1 or 0.9, 0.51 at p = 0.01 or 0.99. A keep rate of p with scale 1/p, or any
    scale error, moves the mean.
    """
    q = 1 - p
    n_target = stats.keep_rate_n(q)
    layer = impl.dropout(p=p)
    layer.train(True)
    impl.seed(seed)
    x = np.full((_rows_for(n_target), COLS), X)
    r = layer.forward(x, dtype="float64").y / X
    n = r.size
    lo, hi = stats._acceptance(n, q, stats.ALPHA)
    slack = 1e-9 * n
    for condition, value, target, k_implied in (("mean", float(np.mean(r)), 1.0, float(np.mean(r)) * n * q),
                                                 ("second-moment", float(np.mean(r * r)), 1 / q,
                                                  float(np.mean(r * r)) * n * q * q)):
        scale = target / (n * q)
        if not np.isfinite(value):  # a NaN or inf output: no count is implied, the moment is simply wrong
            ph.check(False, "DO-MOMENT-01", condition, f"got {'mean(y/x)' if condition == 'mean' else 'mean((y/x)^2)'}"
                     f" = {value}, expected {target:.6f} (the output holds non-finite values where x = {X}) "
                     f"[Dropout(p={p})]", observed=str(value), expected=f"{target:.6g}")
            continue
        pvalue = stats.binomial(min(n, max(0, int(round(k_implied)))), n, q).pvalue
        ph.measure("DO-MOMENT-01", condition, kind="mean-ratio", n=n, rate=value, p0=target,
                   ci=[lo * scale, hi * scale], pvalue=pvalue, alpha=stats.ALPHA)
        name = "mean(y/x)" if condition == "mean" else "mean((y/x)^2)"
        ph.check(lo - slack <= k_implied <= hi + slack, "DO-MOMENT-01", condition,
                 f"got {name} = {value:.6f}, expected {target:.6f} within [{lo * scale:.6f}, {hi * scale:.6f}] "
                 f"(exact binomial acceptance interval at alpha {stats.ALPHA:.2g}, n = {n}) [Dropout(p={p})]",
                 observed=f"{name} = {value:.6g}", expected=f"{target:.6g}")


@pytest.mark.clause("DO-TRAIN-03")
@_statistical(checks=2 * len(LAGS) + 4 * len(MEMORY_LAGS) + 2)
def test_elements_independent(impl, p, seed):
    """Mask elements are independent at every lag and alignment, and kept counts are Binomial.

    1. neighbour-agreement: for lags l = 1..4, the disjoint pairs (i, i+l) with floor(i/l) even
       (offset 0) and with floor((i-l)/l) even (offset l) - together every pair at distance l,
       so lag 1 tests both (2j, 2j+1) and (2j+1, 2j+2) - in the flattened 512 x 512 mask of a
       contiguous input; and for l = 1, 2 in a transposed input's mask, both in logical order
       and in memory order. Exact conditional test on 2^17 pairs each (16 checks): power >=
       0.999 against correlation rho >= 0.026 at lag l (0.1 <= p <= 0.9; 0.039 at p = 0.01 or
       0.99); against one draw shared by an (offset) pair or any lag-l pair, power 1.000.
    2. count-dispersion, two-sided: (under) over 32 calls of 8,192 elements, the number of calls
       whose kept count lies within half a standard deviation of m q is Binomial(32, pi0),
       pi0 <= 0.40 computed exactly; a fixed count per call puts every call there: p-value
       <= 0.40^32 = 1.8e-13. (over) the 512 rows of 512 elements of those calls: the number of rows
       whose count is more than 2 sd from 512 q is Binomial(512, pi2), pi2 ~ 0.047 exactly;
       power against counts with variance 2x binomial 0.997, 4x: 1.000 (0.05 <= p <= 0.95),
       1.5x: 0.19.
    """
    q = 1 - p
    what = f"Dropout(p={p})"
    (mask,) = _masks(impl, p, SIDE, SIDE, seed)
    flat = mask.ravel()
    for lag in LAGS:
        for offset in (0, lag):
            a, b = stats.lag_pairs(flat, lag, offset)
            _independent(a, b, "DO-TRAIN-03", "neighbour-agreement",
                         f"{what}: elements (i, i+{lag}) from offset {offset}, contiguous input")
    (tmask,) = _masks(impl, p, SIDE, SIDE, seed + 1, layout="transposed")
    for order, seq in (("logical", tmask.ravel(order="C")), ("memory", tmask.ravel(order="F"))):
        for lag in MEMORY_LAGS:
            for offset in (0, lag):
                a, b = stats.lag_pairs(seq, lag, offset)
                _independent(a, b, "DO-TRAIN-03", "neighbour-agreement",
                             f"{what}: elements (i, i+{lag}) from offset {offset}, transposed input, {order} order")
    calls, rows, cols = 32, 16, 512
    masks = _masks(impl, p, rows, cols, seed + 2, calls=calls)
    pi0, lo, hi = stats.central_window_probability(rows * cols, q)
    counts = [int(mk.sum()) for mk in masks]
    inside = sum(lo <= c <= hi for c in counts)
    ph.assert_binomial(stats.binomial(inside, calls, pi0, alternative="greater"), "DO-TRAIN-03",
                       "count-dispersion", f"{what}: calls with a kept count in [{lo}, {hi}] (under-dispersion); "
                                           f"counts per call {counts[:5]}...")
    row_counts = np.concatenate([mk.sum(axis=1) for mk in masks])
    sd = math.sqrt(cols * q * p)
    outside = int(np.count_nonzero(np.abs(row_counts - cols * q) > 2 * sd))
    ph.assert_binomial(stats.binomial(outside, row_counts.size, stats.tail_probability(cols, q),
                                      alternative="greater"), "DO-TRAIN-03", "count-dispersion",
                       f"{what}: rows of {cols} with a kept count more than 2 sd from {cols * q:.1f} "
                       f"(over-dispersion)")


@pytest.mark.clause("DO-TRAIN-04")
@_statistical(checks=3)
def test_samples_independent(impl, p, seed):
    """Rows of a batch have independent masks: every adjacent pair of rows, (2i, 2i+1) and
    (2i+1, 2i+2), and a random matching of the rows (512 x 512 mask, 2^17 element pairs per
    check, exact conditional test). Power >= 0.999 against correlation rho >= 0.026 between
    the rows of a pair (0.1 <= p <= 0.9); 1.000 against a mask broadcast over (or shared by) any
    pair of adjacent rows."""
    (mask,) = _masks(impl, p, SIDE, SIDE, seed)
    for name, (i, j) in _row_pairs(mask, seed).items():
        _independent(mask[i.ravel()], mask[j.ravel()], "DO-TRAIN-04", "sample-agreement",
                     f"Dropout(p={p}) {name}")


@pytest.mark.clause("DO-TRAIN-05")
@_statistical(checks=2 * CALLS - 3)
def test_calls_independent(impl, p, seed):
    """Four successive calls draw independent masks: calls at lag 1 (1-2, 2-3, 3-4) and lag 2
    (1-3, 2-4), 2^17 elements each, exact conditional test. Power >= 0.999 against correlation
    rho >= 0.026 between calls (0.1 <= p <= 0.9); 1.000 against a cached mask (lag 1) and a
    sequence repeating with period 2 (calls 3, 4 = calls 1, 2: lag 2)."""
    masks = _masks(impl, p, SIDE // 2, SIDE, seed, calls=CALLS)
    for name, (a, b) in _call_pairs(masks).items():
        _independent(a, b, "DO-TRAIN-05", "call-agreement", f"Dropout(p={p}) {name}")


# The channel clauses cover every channel kind the implementation provides. hh.given runs each test once
# per provided kind, with that kind as its focus and its share of the examples; provided() narrows to the
# focus, so each example checks exactly one kind (the `statistical` counts below are per kind).
@pytest.mark.clause("D2-TRAIN-03", "D2-TRAIN-01")
@_statistical(checks=1, with_dtype=True)
def test_channel_keep_rate(impl, p, seed, dtype):
    """D2-TRAIN-03 on Dropout1d, Dropout2d and Dropout3d: the number of kept (sample, channel) planes is
    Binomial(N*C, 1-p), in every dtype (n and power as test_keep_rate); the scale of every kept element
    and whole-plane dropping are checked too, in the same dtype (D2-TRAIN-01)."""
    q = 1 - p
    channels = 64
    for kind in provided(impl, CHANNEL_KINDS):
        hh.assume_expressed(impl, kind, dtype=dtype)
        (mask,) = _channel_masks(impl, kind, p, _rows_for(stats.keep_rate_n(q), channels), channels, seed, dtype,
                                 check_scale=True)
        _check_channel_keep_rate(mask, p, kind, dtype)


@pytest.mark.clause("D2-TRAIN-04")
@_statistical(checks=3 + 4 + 2 * CALLS - 3)
def test_channel_draws_independent(impl, p, seed):
    """D2-TRAIN-04 on Dropout1d, Dropout2d and Dropout3d: channel draws z[n, c] of a 512 x 512 (N x C)
    mask are independent across samples (adjacent pairs (2i, 2i+1), (2i+1, 2i+2), a random matching),
    across channels (lags 1 and 2, both offsets) and across four successive calls (lags 1 and 2): 2^17
    pairs per check, exact conditional test; power as test_samples_independent (rho >= 0.026 at
    0.1 <= p <= 0.9; 1.000 against a shared draw)."""
    for kind in provided(impl, CHANNEL_KINDS):
        masks = _channel_masks(impl, kind, p, SIDE, SIDE, seed, calls=CALLS)
        _check_channel_draws(masks, seed, f"{kind}(p={p})")
