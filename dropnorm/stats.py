"""Exact statistical tests for what is random by nature (keep rate, independence).

The false-alarm budget lives here, in one place:

  FAMILY_ALPHA = 1e-6: the probability that a correct implementation fails a
  whole run with fresh seeds (thorough profile). Bonferroni over
  MAX_STAT_CHECKS statistical checks per run gives ALPHA per check.
  tests/test_spec_index.py::test_statistical_budget verifies that the
  statistical tests, times their examples, stay within MAX_STAT_CHECKS.

Power target: a keep probability off by DELTA = 0.01 (absolute) at any p
tried is detected with probability >= POWER = 0.999. required_n() computes the
sample size from these numbers with the exact binomial distribution.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

FAMILY_ALPHA = 1e-6
MAX_STAT_CHECKS = 2000
ALPHA = FAMILY_ALPHA / MAX_STAT_CHECKS   # 5e-10 per check
DELTA = 0.01
POWER = 0.999
STAT_MAX_EXAMPLES = 20                   # hypothesis examples per statistical test, at most


@dataclass
class BinomialResult:
    """One exact binomial test: k successes in n trials against probability p0."""

    k: int
    n: int
    p0: float
    pvalue: float
    alpha: float
    ci: tuple[float, float]

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def rejected(self) -> bool:
        return self.pvalue < self.alpha

    def describe(self) -> str:
        return (f"{self.k}/{self.n} = {self.rate:.5f}, expected {self.p0:.5f}; "
                f"{1 - self.alpha:.10g} CI [{self.ci[0]:.5f}, {self.ci[1]:.5f}]; "
                f"p-value {self.pvalue:.3g} vs alpha {self.alpha:.3g}")


def binomial(k: int, n: int, p0: float, alpha: float = ALPHA, alternative: str = "two-sided") -> BinomialResult:
    """scipy.stats.binomtest, exact; the CI is Clopper-Pearson at level 1 - alpha."""
    r = st.binomtest(int(k), int(n), p0, alternative=alternative)
    ci = r.proportion_ci(confidence_level=1 - alpha, method="exact")
    return BinomialResult(int(k), int(n), float(p0), float(r.pvalue), alpha, (float(ci.low), float(ci.high)))


def _acceptance(n: int, p0: float, alpha: float) -> tuple[int, int]:
    """Smallest interval [lo, hi] of k with P0(k < lo) + P0(k > hi) <= alpha (equal tails)."""
    lo = int(st.binom.ppf(alpha / 2, n, p0))
    while lo > 0 and st.binom.cdf(lo - 1, n, p0) > alpha / 2:
        lo -= 1
    hi = int(st.binom.isf(alpha / 2, n, p0))
    while st.binom.sf(hi, n, p0) > alpha / 2:
        hi += 1
    return lo, hi


def power(n: int, p0: float, p1: float, alpha: float = ALPHA) -> float:
    """Exact probability that the equal-tailed level-alpha test rejects when the truth is p1."""
    lo, hi = _acceptance(n, p0, alpha)
    return float(st.binom.cdf(lo - 1, n, p1) + st.binom.sf(hi, n, p1))


@functools.lru_cache(maxsize=256)
def required_n(p0: float, delta: float = DELTA, alpha: float = ALPHA, target: float = POWER) -> int:
    """Smallest n (to 1%) whose exact test detects p0 +- delta with power >= target.

    Starts from the normal approximation n = ((z_{a/2} sd0 + z_b sd1)/delta)^2 and
    grows it until the exact power holds for both alternatives inside [0, 1].
    """
    alts = [a for a in (p0 - delta, p0 + delta) if 0.0 <= a <= 1.0]
    za, zb = st.norm.isf(alpha / 2), st.norm.isf(1 - target)
    sd0 = math.sqrt(p0 * (1 - p0))
    n = max(100, int(max(((za * sd0 + zb * math.sqrt(a * (1 - a))) / delta) ** 2 for a in alts)))
    while min(power(n, p0, a, alpha) for a in alts) < target:
        n = int(n * 1.01) + 1
    return n


def agreement_probability(q: float) -> float:
    """P(two independent Bernoulli(q) bits agree) = q^2 + (1-q)^2."""
    return q * q + (1 - q) * (1 - q)


def agreements(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Number of positions where two boolean masks agree, and the number of positions."""
    a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
    return int(np.count_nonzero(a == b)), a.size


def central_window_probability(n: int, q: float, half_width_sd: float = 0.5) -> tuple[float, int, int]:
    """P(|K - n q| <= w) for K ~ Binomial(n, q), w = half_width_sd * sd, exactly; and the window."""
    sd = math.sqrt(n * q * (1 - q))
    lo, hi = math.ceil(n * q - half_width_sd * sd), math.floor(n * q + half_width_sd * sd)
    return float(st.binom.cdf(hi, n, q) - st.binom.cdf(lo - 1, n, q)), lo, hi
