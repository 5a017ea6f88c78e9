"""Dropout masks at every scale, lag, shift and call distance (DO-TRAIN-02/size-sweep, DO-TRAIN-03/size-sweep
and every-lag, DO-TRAIN-05/every-shift and period): the checks of test_dropout_stats.py look at masks of at
most 424,448 values, at lags 1-4 within a call and at the same index across calls; a generator that goes
wrong past 2^20 elements, reuses a stream shifted by a few hundred elements, or cycles over calls passes them.

All exact, at the per-check alpha of dropnorm/spec/stats.py (one statistical check = one family of exact tests
at alpha/T each, Bonferroni over its T members, so the family's false alarm is <= ALPHA = 5e-10 whatever
the screen picks); mask bits are read back from outputs of a constant nonzero input (float32). Sizes scale
with the profile: MAX_EXPONENT = hh.scale_exponent(), 22 in quick, 24 in ci and thorough. Keep-rate powers
are exact (stats.power); the smallest detected correlations rho are the normal approximation
(z_{alpha/T} + z_{0.001}) / sqrt(pairs) at 0.1 <= q <= 0.9; the power against rho = 1/4 is exact
(stats.independence_power, 2^21 pairs, alpha/2^22: 1.000000 at q = 0.5, 0.1, 0.01, 1e-3 and 1e-4).

1. size-sweep (test_every_size): n = 2^k - 1, 2^k, 2^k + 1 for k = 1..MAX_EXPONENT (65 sizes to 2^22, 71 to
   2^24), each its own layer, seed and call. DO-TRAIN-02: the kept count at each size is Binomial(n, q)
   (exact two-sided test at alpha/65): at n = 2^22 + 1 a keep rate off by 0.0024 (q = 0.5), 0.0015 (0.1),
   0.0005 (0.01), 0.00016 (0.001) is detected with power >= 0.999 (at 2^24 + 1: 0.0012, 0.0007, 0.00025,
   0.00008). DO-TRAIN-03: at each size, lags 1-4, both groups of disjoint pairs (stats.lag_groups), exact
   conditional test at alpha/(8 * 65): with the 2^21 pairs of the largest size, rho >= 0.007 is detected
   with power 0.999; one draw per aligned quad past 2^20 gives rho = 1 on 3/4 of the lag-1 pairs of the
   3 * 2^20 tail elements: power 1.000 at every size from 2^21 - 1 on.
2. every-lag (DO-TRAIN-03, same test): the largest mask at every lag 1 <= l <= n/2, screened by FFT
   autocorrelation (stats.every_lag: the normalised correlation r_l = sum x_i x_{i+l} / (v sqrt(n - l)) of
   the centred mask, float32), the SCREEN_TOP = 4 largest |r_l| tested exactly, both groups of disjoint
   pairs, at alpha/T, T = 2 floor(n/2) = 2^22. A lag-k reuse of 1 in 4 draws (a quarter of the elements copy
   the element k before: rho = 1/4 at lag k <= n/2) is detected with power 1.000000 for every q in
   [1e-4, 1 - 1e-4] once screened in; its r_k ~ rho sqrt(n) = 512 against a null maximum near
   sqrt(2 ln 2^22) = 5.5 screens it in. rho >= 0.008 detected with power 0.999 (0.1 <= q <= 0.9).
3. every-shift (test_calls_every_shift, DO-TRAIN-05): three successive calls of 2^(MAX_EXPONENT-2)
   elements (2^20 in quick, 2^22 in ci), each pair of calls at every shift |s| <= n/2 (pairs (a_i, b_{i+s}),
   disjoint), screened by FFT cross-correlation, exact at alpha/T, T = 3 (n + 1). A stream reused shifted by
   s (call k = call k-1 moved by s positions) is rho = 1 on n - |s| >= n/2 pairs: power 1.000; rho >= 0.016
   detected with power 0.999.
4. period (same test): PERIOD_CALLS = 256 successive calls of PERIOD_SIZE = 4,096 elements at every call
   distance 1 <= d < 256 (disjoint call pairs, stats.every_call_distance; T = 383 groups), screened by the
   Gram matrix of the centred masks: a cycle of any period up to 255 calls repeats masks exactly (rho = 1 on
   >= 4,096 pairs): power 1.000 for 0.01 <= q <= 0.99; rho >= 0.014 between calls at distance d <= 128
   (>= 2^19 pairs per group) detected with power 0.999.

Examples: SCALE_EXAMPLES = 2 per test (p and seed from the statistical strategies: the sweep alone draws
2.5e7 values per example in quick, 1e8 in ci). Hypothesis's first example is always the simplest (p = 1e-4,
seed 0), so one example would test that p and seed in every run, however the run is seeded; the second is
drawn fresh from the run's seed (any p in [1e-4, 1 - 1e-4], the ends and 0.5 stratified). Each test still
counts 3 (resp. 2) checks per example against the budget for stats.STAT_MAX_EXAMPLES examples, as every
statistical test does.
"""
import numpy as np
import pytest
from hypothesis import settings

from dropnorm.suite import checks as ph
from dropnorm.spec import stats
from dropnorm.suite import strategies as hh
from dropnorm.suite.traced import current_trace

X = 1.5
SCALE_EXAMPLES = 2
PERIOD_CALLS, PERIOD_SIZE = 256, 4096
CALLS = 3


def _scale_statistical(checks: int):
    marker = pytest.mark.statistical(checks=checks)
    s = hh.stat_settings()

    def decorate(test):
        return marker(settings(s, max_examples=min(s.max_examples, SCALE_EXAMPLES))(
            hh.given(p=hh.keep_probabilities(), seed=hh.seeds())(test)))
    return decorate


def _mask(layer, n):
    return ph.read_mask(layer.forward(np.full(n, X, np.float32), dtype="float32").y).ravel()


def _forget(start):
    """Drop a passed size's calls from the trace: the trace keeps each call's input and output (up to 2^24
    values each), and every size is seeded on its own, so a failing size's reproduction needs only its
    own calls."""
    del current_trace().calls[start:]


@pytest.mark.clause("DO-TRAIN-02", "DO-TRAIN-03")
@_scale_statistical(checks=3)
def test_every_size(impl, p, seed):
    """Masks of 2^k - 1, 2^k and 2^k + 1 elements up to 2^MAX_EXPONENT: kept counts Binomial(n, 1-p), lags
    1-4 independent at every size, and every lag up to n/2 of the largest (see the module docstring)."""
    q = 1 - p
    sizes = stats.sweep_sizes(hh.scale_exponent())
    m = len(sizes)
    what = f"Dropout(p={p})"
    best_rate, best_lag = None, None
    for i, n in enumerate(sizes):
        start = len(current_trace().calls)
        layer = impl.dropout(p=p)
        layer.train(True)
        impl.seed((seed + i) % 2 ** 32)
        mask = _mask(layer, n)
        k = int(mask.sum())
        pv = stats.binomial(k, n, q).pvalue
        if best_rate is None or pv < best_rate[0]:
            best_rate = (pv, k, n)
        if pv < stats.ALPHA / m:
            ph.assert_binomial(stats.binomial(k, n, q, alpha=stats.ALPHA / m), "DO-TRAIN-02", "size-sweep",
                               f"{what} keep rate at n = {n} (one of {m} sizes, alpha/{m})")
        for lag in (1, 2, 3, 4):
            for off, (a, b) in zip((0, lag), stats.lag_groups(mask, lag)):
                lp = stats.independence_pvalue(a, b)
                if best_lag is None or lp < best_lag[0]:
                    best_lag = (lp, n, lag, off, a.copy(), b.copy())
                if lp < stats.ALPHA / (8 * m):
                    ph.assert_binomial(stats.independence(a, b, stats.ALPHA / (8 * m)), "DO-TRAIN-03", "size-sweep",
                                       f"{what} at n = {n}: elements (i, i+{lag}) from offset {off} (one of "
                                       f"{8 * m} tests, alpha/{8 * m})")
        if i < m - 1:
            _forget(start)
    _, k, n = best_rate
    ph.assert_binomial(stats.binomial(k, n, q, alpha=stats.ALPHA / m), "DO-TRAIN-02", "size-sweep",
                       f"{what} keep rate at n = {n}, the most extreme of {m} sizes {sizes[0]}..{sizes[-1]}")
    _, n_lag, lag, off, a, b = best_lag
    ph.assert_binomial(stats.independence(a, b, stats.ALPHA / (8 * m)), "DO-TRAIN-03", "size-sweep",
                       f"{what} at n = {n_lag}: elements (i, i+{lag}) from offset {off}, the most extreme of "
                       f"lags 1-4 at {m} sizes")
    family = stats.every_lag(mask)
    ph.assert_binomial(family.worst, "DO-TRAIN-03", "every-lag", f"{what}, {mask.size} elements: {family.context()}")


@pytest.mark.clause("DO-TRAIN-05")
@_scale_statistical(checks=2)
def test_calls_every_shift(impl, p, seed):
    """Successive calls at every shift and every call distance (see the module docstring)."""
    what = f"Dropout(p={p})"
    n = 2 ** (hh.scale_exponent() - 2)
    layer = impl.dropout(p=p)
    layer.train(True)
    start = len(current_trace().calls)
    impl.seed(seed)
    masks = [_mask(layer, n) for _ in range(CALLS)]
    pairs = [(i, j) for i in range(CALLS) for j in range(i + 1, CALLS)]
    tests = len(pairs) * (2 * (n // 2) + 1)
    fams = [stats.every_shift(masks[i], masks[j], tests=tests, label=f"calls {i + 1} and {j + 1}: ")
            for i, j in pairs]
    family = min(fams, key=lambda f: f.worst.pvalue)
    ph.assert_binomial(family.worst, "DO-TRAIN-05", "every-shift", f"{what}, {n} elements per call: "
                                                                   f"{family.context()}")
    _forget(start)
    impl.seed((seed + 1) % 2 ** 32)
    many = np.stack([_mask(layer, PERIOD_SIZE) for _ in range(PERIOD_CALLS)])
    family = stats.every_call_distance(many)
    ph.assert_binomial(family.worst, "DO-TRAIN-05", "period", f"{what}, {PERIOD_CALLS} calls of {PERIOD_SIZE}: "
                                                              f"{family.context()}")
