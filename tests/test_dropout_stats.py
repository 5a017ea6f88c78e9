"""Dropout and Dropout2d randomness: keep rate and independence (DO-TRAIN-02..05, DO-MOMENT-01,
D2-TRAIN-03, D2-TRAIN-04).

Exact binomial tests (scipy.stats.binomtest) at the per-check alpha of
dropnorm/stats.py (FAMILY_ALPHA 1e-6 per run, Bonferroni over MAX_STAT_CHECKS).
Sample sizes come from stats.required_n: a rate (keep rate, or agreement rate
between two mask bits) off by 0.01 absolute is detected with power >= 0.999.
Agreement of two independent Bernoulli(q) bits has probability q^2 + p^2; a
correlation rho between them moves it by 2 rho q p, so the same n detects
|rho| >= 0.005 / (q p). p is drawn away from 0.5, where p and 1-p coincide.
Mask bits are read back from outputs of a constant nonzero input.
"""
import math

import numpy as np
import pytest

from dropnorm import checks as ph
from dropnorm import stats
from dropnorm import strategies as hh

X = 1.5  # exactly representable in every dtype; nonzero, so y != 0 <=> kept
COLS = 512


def _masks(impl, p, rows, cols, seed, dtype="float32", calls=1, channelwise=False):
    """Keep masks of `calls` successive training calls on a constant input (one seed)."""
    layer = impl.dropout2d(p=p) if channelwise else impl.dropout(p=p)
    layer.train(True)
    impl.seed(seed)
    shape = (rows, cols, 1, 2) if channelwise else (rows, cols)
    x = np.full(shape, X)
    clause = "D2-TRAIN-01" if channelwise else "DO-TRAIN-01"
    return [ph.assert_inverted_dropout(x, layer.forward(x, dtype=dtype).y, p, dtype, clause,
                                       f"{'Dropout2d' if channelwise else 'Dropout'}(p={p}) call {i + 1}",
                                       channelwise=channelwise)
            for i in range(calls)]


def _rows_for(n: int, cols: int = COLS) -> int:
    return max(2, math.ceil(n / cols))


@pytest.mark.clause("DO-TRAIN-02")
@pytest.mark.statistical(checks=1)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds(), dtype=hh.dtypes(("float32", "float64", "float16")))
def test_keep_rate(impl, p, seed, dtype):
    """The number of kept elements is Binomial(n, 1-p) (exact two-sided test)."""
    hh.assume_expressed(impl, "Dropout", dtype=dtype)
    q = 1 - p
    n = stats.required_n(q)
    (mask,) = _masks(impl, p, _rows_for(n), COLS, seed, dtype)
    ph.assert_binomial(stats.binomial(int(mask.sum()), mask.size, q), "DO-TRAIN-02", "keep-rate",
                       f"Dropout(p={p}) keep rate, {dtype}")


@pytest.mark.clause("DO-MOMENT-01")
@pytest.mark.statistical(checks=1)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds())
def test_expectation_preserved(impl, p, seed):
    """mean(y)/x must be 1 within the exact binomial acceptance interval.

    mean(y)/x = (k/n) s with s the kept scale; under the clause k ~ Binomial(n, q)
    and s = 1/q, so mean(y)/x * n * q must fall in the level-alpha acceptance
    interval [lo, hi] of Binomial(n, q) (widened by the dtype's scale tolerance).
    A keep rate of p with scale 1/p, or any scale error, moves it out.
    """
    q = 1 - p
    n_target = stats.required_n(q)
    layer = impl.dropout(p=p)
    layer.train(True)
    impl.seed(seed)
    x = np.full((_rows_for(n_target), COLS), X)
    y = layer.forward(x, dtype="float64").y
    n = y.size
    k_implied = float(np.mean(y) / X * n * q)
    lo, hi = stats._acceptance(n, q, stats.ALPHA)
    slack = 1e-9 * n
    pvalue = stats.binomial(int(round(k_implied)), n, q).pvalue
    ph.measure("DO-MOMENT-01", "mean", kind="mean-ratio", n=n, rate=float(np.mean(y) / X), p0=1.0,
               ci=[lo / (n * q), hi / (n * q)], pvalue=pvalue, alpha=stats.ALPHA)
    ph.check(lo - slack <= k_implied <= hi + slack, "DO-MOMENT-01", "mean",
             f"got mean(y)/x = {np.mean(y) / X:.6f}, expected 1 within [{lo / (n * q):.6f}, {hi / (n * q):.6f}] "
             f"(exact binomial acceptance interval at alpha {stats.ALPHA:.2g}, n = {n}) [Dropout(p={p})]",
             observed=f"mean(y)/x = {np.mean(y) / X:.6g}", expected="1")


@pytest.mark.clause("DO-TRAIN-03")
@pytest.mark.statistical(checks=2)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds())
def test_elements_independent(impl, p, seed):
    """Neighbouring elements agree with probability q^2 + p^2, and the count per call is not fixed.

    1. Disjoint neighbour pairs (2j, 2j+1) of the flattened mask are i.i.d.;
       their agreement count is Binomial(pairs, q^2 + p^2). Alternative: block or
       Markov-correlated masks.
    2. Over K = 40 calls of m = 4000 elements, the number of calls whose kept
       count lies within half a standard deviation of m q is Binomial(K, pi0),
       pi0 computed exactly (about 0.38). Alternative: a fixed number of drops
       per call puts every call in the window: p-value pi0^40 < 1e-16.
    """
    q = 1 - p
    a0 = stats.agreement_probability(q)
    pairs = stats.required_n(a0)
    (mask,) = _masks(impl, p, _rows_for(2 * pairs), COLS, seed)
    flat = mask.ravel()
    flat = flat[: flat.size // 2 * 2]
    agree, total = stats.agreements(flat[0::2], flat[1::2])
    ph.assert_binomial(stats.binomial(agree, total, a0), "DO-TRAIN-03", "neighbour-agreement",
                       f"Dropout(p={p}) neighbour pairs")
    calls, m = 40, 4000
    pi0, lo, hi = stats.central_window_probability(m, q)
    counts = [int(mk.sum()) for mk in _masks(impl, p, 8, m // 8, seed + 1, calls=calls)]
    inside = sum(lo <= c <= hi for c in counts)
    ph.assert_binomial(stats.binomial(inside, calls, pi0, alternative="greater"), "DO-TRAIN-03",
                       "count-dispersion", f"Dropout(p={p}) kept counts per call {counts[:5]}...")


@pytest.mark.clause("DO-TRAIN-04")
@pytest.mark.statistical(checks=1)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds())
def test_samples_independent(impl, p, seed):
    """Rows 2i and 2i+1 of a batch agree element-wise with probability q^2 + p^2.
    Alternative: one mask broadcast over (or correlated across) the batch."""
    q = 1 - p
    a0 = stats.agreement_probability(q)
    rows = 2 * max(1, math.ceil(stats.required_n(a0) / COLS))
    (mask,) = _masks(impl, p, rows, COLS, seed)
    agree, total = stats.agreements(mask[0::2], mask[1::2])
    ph.assert_binomial(stats.binomial(agree, total, a0), "DO-TRAIN-04", "sample-agreement",
                       f"Dropout(p={p}) sample pairs")


@pytest.mark.clause("DO-TRAIN-05")
@pytest.mark.statistical(checks=1)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds())
def test_calls_independent(impl, p, seed):
    """Two successive calls agree element-wise with probability q^2 + p^2.
    Alternative: a cached mask reused (or correlated) across calls."""
    q = 1 - p
    a0 = stats.agreement_probability(q)
    first, second = _masks(impl, p, _rows_for(stats.required_n(a0)), COLS, seed, calls=2)
    agree, total = stats.agreements(first, second)
    ph.assert_binomial(stats.binomial(agree, total, a0), "DO-TRAIN-05", "call-agreement",
                       f"Dropout(p={p}) two successive calls")


@pytest.mark.clause("D2-TRAIN-03")
@pytest.mark.statistical(checks=1)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds())
def test_channel_keep_rate(impl, p, seed):
    """The number of kept (sample, channel) planes is Binomial(N*C, 1-p)."""
    q = 1 - p
    channels = 64
    (mask,) = _masks(impl, p, _rows_for(stats.required_n(q), channels), channels, seed, channelwise=True)
    ph.assert_binomial(stats.binomial(int(mask.sum()), mask.size, q), "D2-TRAIN-03", "channel-keep-rate",
                       f"Dropout2d(p={p}) channel keep rate")


@pytest.mark.clause("D2-TRAIN-04")
@pytest.mark.statistical(checks=3)
@hh.stat_settings()
@hh.given(p=hh.keep_probabilities(), seed=hh.seeds())
def test_channel_draws_independent(impl, p, seed):
    """Channel draws agree with probability q^2 + p^2 between paired samples (same
    channel), paired channels (same sample) and two successive calls."""
    q = 1 - p
    a0 = stats.agreement_probability(q)
    channels = 64
    rows = 2 * max(1, math.ceil(stats.required_n(a0) / (channels // 2)))
    first, second = _masks(impl, p, rows, channels, seed, calls=2, channelwise=True)
    for condition, (a, b) in {"sample-agreement": (first[0::2], first[1::2]),
                              "channel-agreement": (first[:, 0::2], first[:, 1::2]),
                              "call-agreement": (first, second)}.items():
        agree, total = stats.agreements(a, b)
        ph.assert_binomial(stats.binomial(agree, total, a0), "D2-TRAIN-04", condition,
                           f"Dropout2d(p={p}) {condition}")
