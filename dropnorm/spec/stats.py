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


class _SciPyStats:
    """scipy.stats, imported at its first use: it costs about a second of CPU to import, which every pytest
    worker and the audit process would pay at start-up although most audits' first statistical test comes
    late or never (an audit of one clause)."""

    def __getattr__(self, name):
        from scipy import stats
        return getattr(stats, name)


st = _SciPyStats()

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


# ------------------------------------------------------------------ the whole range of p
# Keep-rate tests draw p from all of (0, 1) (p = 0 and p = 1 exactly are DO-P0-01 / DO-P1-01).
# Near the ends an absolute error of DELTA is no target (p = 0.001 dropped as 0.011 is 11x):
# the rarer outcome's rate r = min(p, 1-p) must be right within REL_DELTA * r, down to
# RARE_FLOOR, below which the absolute target REL_DELTA * RARE_FLOOR = 5e-4 applies.
P_MIN = 1e-4                             # the statistical tests draw p in [P_MIN, 1 - P_MIN]
REL_DELTA = 0.5
RARE_FLOOR = 1e-3


def rate_delta(q: float) -> float:
    """The keep-rate error that must be detected with power POWER at keep probability q:
    min(DELTA, REL_DELTA * max(min(q, 1-q), RARE_FLOOR)) (0.01 for 0.02 <= q <= 0.98; 0.0005 at the ends)."""
    return min(DELTA, REL_DELTA * max(min(q, 1.0 - q), RARE_FLOOR))


def keep_rate_n(q: float) -> int:
    """Elements for a keep-rate test at keep probability q: required_n for rate_delta(q); below
    r = RARE_FLOOR the n of r = RARE_FLOOR (424,433), so that a rarer outcome that never happens
    (p treated as 0 or 1) is rejected for every r >= 5.1e-5 (n r >= 21.6 = -ln(alpha))."""
    r = min(q, 1.0 - q)
    if r < RARE_FLOOR:
        q = RARE_FLOOR if q < 0.5 else 1.0 - RARE_FLOOR
    return required_n(round(q, 12), rate_delta(q))


# ------------------------------------------------------------------ dependence between mask bits
# Two mask bits (a_i, b_i) over n disjoint pairs make a 2x2 table. Under independence,
# conditionally on the margins (kept counts of a and of b), the number of pairs with both
# kept is hypergeometric, whatever q is: an exact conditional test (Fisher's, equal-tailed
# here, so that its acceptance interval and its power are exact too). A correlation rho
# between the bits makes it Fisher's noncentral hypergeometric with odds ratio
# omega = P11 P00 / (P10 P01), P11 = q^2 + rho q p, P00 = p^2 + rho q p, P10 = P01 = q p (1 - rho).
# Keep-rate errors do not move it (they are DO-TRAIN-02's), only dependence does.
DEPENDENCE_PAIRS = 2 ** 17               # pairs per dependence check: |rho| >= 0.026 at 0.1 <= q <= 0.9


@dataclass
class IndependenceResult:
    """The equal-tailed exact conditional test of independence of two mask bits (k = pairs both kept)."""

    k: int
    n: int
    p0: float            # expected rate of both-kept pairs under independence, given the margins
    pvalue: float
    alpha: float
    ci: tuple[float, float]   # acceptance interval of k/n at level alpha
    agree: int = 0

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def rejected(self) -> bool:
        return self.pvalue < self.alpha

    def describe(self) -> str:
        return (f"{self.k} of {self.n} pairs both kept = {self.rate:.5f}, expected {self.p0:.5f} under independence "
                f"({self.agree} agree); acceptance [{self.ci[0]:.5f}, {self.ci[1]:.5f}]; exact conditional "
                f"(Fisher) p-value {self.pvalue:.3g} vs alpha {self.alpha:.3g}")


def _hypergeom_acceptance(dist, alpha: float) -> tuple[int, int]:
    lo, hi = int(dist.ppf(alpha / 2)), int(dist.isf(alpha / 2))
    while lo > 0 and dist.cdf(lo - 1) > alpha / 2:
        lo -= 1
    while dist.sf(hi) > alpha / 2:
        hi += 1
    return lo, hi


def independence(a, b, alpha: float = ALPHA) -> IndependenceResult:
    """Exact conditional test that bits a_i and b_i (disjoint pairs) are independent."""
    a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
    n, ka, kb = a.size, int(np.count_nonzero(a)), int(np.count_nonzero(b))
    k = int(np.count_nonzero(a & b))
    agree = int(np.count_nonzero(a == b))
    dist = st.hypergeom(n, ka, kb)
    pvalue = min(1.0, 2.0 * min(float(dist.cdf(k)), float(dist.sf(k - 1))))
    lo, hi = _hypergeom_acceptance(dist, alpha)
    return IndependenceResult(k, n, ka * kb / (n * n) if n else float("nan"), pvalue, alpha,
                              (lo / n, hi / n) if n else (0.0, 1.0), agree)


def lag_pairs(seq, lag: int, offset: int):
    """Disjoint pairs (i, i + lag) of a 1-D sequence: every pair with floor((i - offset)/lag) even.
    offset 0 and offset lag together cover every pair at distance lag (lag 1: (2j, 2j+1) and (2j+1, 2j+2))."""
    s = np.asarray(seq).ravel()[offset:]
    m = s.size // (2 * lag) * (2 * lag)
    blocks = s[:m].reshape(-1, 2, lag)
    return blocks[:, 0, :], blocks[:, 1, :]


def odds_ratio(q: float, rho: float) -> float:
    p = 1.0 - q
    p11, p00, p10 = q * q + rho * q * p, p * p + rho * q * p, q * p * (1 - rho)
    return float("inf") if p10 <= 0 else p11 * p00 / (p10 * p10)


def independence_power(n: int, q: float, rho: float, alpha: float = ALPHA) -> float:
    """Exact power of independence() against correlation rho, with both margins at round(n q)."""
    m = int(round(n * q))
    if m in (0, n):
        return 0.0
    lo, hi = _hypergeom_acceptance(st.hypergeom(n, m, m), alpha)
    omega = odds_ratio(q, rho)
    if math.isinf(omega):
        return 1.0
    alt = st.nchypergeom_fisher(n, m, m, omega)
    return float(alt.cdf(lo - 1) + alt.sf(hi))


def detectable_rho(n: int, q: float, target: float = POWER, alpha: float = ALPHA) -> float:
    """Smallest positive correlation detected with power >= target (to 3 digits), by bisection."""
    lo, hi = 0.0, 1.0
    if independence_power(n, q, 0.999, alpha) < target:
        return float("nan")
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if independence_power(n, q, mid, alpha) >= target else (mid, hi)
    return hi


# ------------------------------------------------------------------ dispersion of kept counts
def tail_probability(m: int, q: float, z: float = 2.0) -> float:
    """P(|K - m q| > z sd) for K ~ Binomial(m, q), exactly."""
    sd = math.sqrt(m * q * (1 - q))
    lo, hi = math.ceil(m * q - z * sd), math.floor(m * q + z * sd)
    return float(st.binom.cdf(lo - 1, m, q) + st.binom.sf(hi, m, q))


def overdispersion_power(blocks: int, m: int, q: float, inflation: float, alpha: float = ALPHA) -> float:
    """Power of the one-sided tail-count test (blocks of m elements, |K - mq| > 2 sd) against counts whose
    variance is `inflation` times binomial (normal approximation of the alternative's tail probability)."""
    pi0 = tail_probability(m, q)
    hi = int(st.binom.isf(alpha, blocks, pi0))
    while st.binom.sf(hi, blocks, pi0) > alpha:
        hi += 1
    pi1 = 2 * st.norm.sf(2.0 / math.sqrt(inflation))
    return float(st.binom.sf(hi, blocks, pi1))


def power_table() -> str:
    """The numbers quoted in dropnorm/properties/test_dropout_stats.py and spec/clauses.toml: python -m dropnorm.spec.stats"""
    lines = ["keep rate: n and detected error per rarer-outcome rate r"]
    for r in (0.5, 0.1, 0.02, 0.01, 0.002, 1e-3, 1e-4):
        lines.append(f"  r={r:g}: delta={rate_delta(r):g} n={keep_rate_n(1 - r)}")
    lines.append(f"dependence, {DEPENDENCE_PAIRS} pairs: smallest rho with power {POWER}")
    for q in (0.5, 0.3, 0.1, 0.05, 0.02, 0.01):
        lines.append(f"  q={q:g} (or p={q:g}): rho >= {detectable_rho(DEPENDENCE_PAIRS, q):.4f}; "
                     f"power at rho=1 (shared draw): {independence_power(DEPENDENCE_PAIRS, q, 1.0):.6f}")
    for q in (1e-3, 1e-4):
        lines.append(f"  q={q:g}: power at rho=1: {independence_power(DEPENDENCE_PAIRS, q, 1.0):.6f}, "
                     f"at rho=0.5: {independence_power(DEPENDENCE_PAIRS, q, 0.5):.6f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(power_table())


# ------------------------------------------------------------------ dependence at every lag, shift and scale
# Exact conditional tests cost a few scipy calls each, so they cannot run at all n lags of a mask of
# millions of bits. The families below screen every lag (or shift, or call distance) with one FFT or
# one Gram matrix of the centred mask, then run the exact conditional test of independence() at the
# SCREEN_TOP most extreme ones, each at level alpha / T, T = the number of exact tests in the whole
# family (every lag, every group of disjoint pairs). False alarm: the exact test of every member of
# the family has level alpha / T under independence, and the screen only leaves tests out, so by
# Bonferroni P(any rejection) <= T * alpha / T = alpha, whatever the screen picks and for every p.
# The screen only decides where the power goes: a dependence that moves its lag's normalised
# correlation far above the null's maximum (about sqrt(2 ln T) ~ 5.5 for T ~ 2^22) is screened in.
SCREEN_TOP = 4                             # exact tests per family: the most extreme screened lags


def independence_pvalue(a, b) -> float:
    """The equal-tailed exact conditional p-value of independence(), without its acceptance interval."""
    a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
    n, ka, kb = a.size, int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if n == 0 or ka in (0, n) or kb in (0, n):
        return 1.0
    k = int(np.count_nonzero(a & b))
    dist = st.hypergeom(n, ka, kb)
    return min(1.0, 2.0 * min(float(dist.cdf(k)), float(dist.sf(k - 1))))


def lag_groups(seq, lag: int) -> list:
    """The groups of disjoint pairs (i, i + lag) of a 1-D sequence: lag_pairs' offsets 0 and lag where
    2 lag <= n, else the one group i < n - lag (already disjoint)."""
    s = np.asarray(seq).ravel()
    if 2 * lag <= s.size:
        return [lag_pairs(s, lag, 0), lag_pairs(s, lag, lag)]
    return [(s[: s.size - lag], s[lag:])] if lag < s.size else []


def _centred(mask) -> tuple[np.ndarray, float]:
    z = np.asarray(mask, bool).ravel()
    q = float(np.count_nonzero(z)) / max(1, z.size)
    return z.astype(np.float32) - np.float32(q), q * (1.0 - q)


def correlation_screen(a, b=None) -> np.ndarray:
    """Normalised correlations of centred masks by FFT (float32: a screen only, the exact tests judge):
    without b, r[l] = sum_i x_i x_{i+l} / (v sqrt(n - l)) for l = 0..n-1 (autocorrelation); with b (same
    size), r[s + n - 1] = sum_i a_i b_{i+s} / (v sqrt(n - |s|)) for s = -(n-1)..n-1, v = sqrt(va vb)."""
    from scipy import fft
    xa, va = _centred(a)
    xb, vb = (xa, va) if b is None else _centred(b)
    n = xa.size
    size = fft.next_fast_len(2 * n, real=True)
    fa = fft.rfft(xa, size)
    fb = fa if b is None else fft.rfft(xb, size)
    corr = fft.irfft(np.conj(fa) * fb, size)       # corr[s] = sum_i a_i b_{i+s}, s mod size
    v = math.sqrt(va * vb) or 1.0
    if b is None:
        return corr[:n] / (v * np.sqrt(n - np.arange(n)))
    full = np.concatenate([corr[size - n + 1:], corr[:n]])
    return full / (v * np.sqrt(n - np.abs(np.arange(-n + 1, n))))


@dataclass
class FamilyResult:
    """A family of exact tests at level alpha / tests each, and its most extreme member's test."""

    tests: int                  # exact tests in the family (the Bonferroni divisor)
    where: str                  # which member the worst test is
    worst: object               # its BinomialResult / IndependenceResult, at level alpha / tests
    screened: str = ""          # what the screen looked at

    @property
    def rejected(self) -> bool:
        return self.worst.rejected

    def context(self) -> str:
        """Which member, and the family: for the message of the check that tests self.worst."""
        return (f"{self.where}, the most extreme of a family of {self.tests} exact tests at alpha/{self.tests}"
                f"{'; ' + self.screened if self.screened else ''}")


def _worst_of(candidates, tests: int, alpha: float, screened: str) -> FamilyResult:
    """candidates: (where, a, b) pairs of bit groups; the exact test of the smallest p-value, at alpha/tests."""
    best = None
    for where, a, b in candidates:
        pv = independence_pvalue(a, b)
        if best is None or pv < best[0]:
            best = (pv, where, a, b)
    if best is None:
        return FamilyResult(tests, "no pairs", IndependenceResult(0, 0, float("nan"), 1.0, alpha / tests, (0.0, 1.0)),
                            screened)
    _, where, a, b = best
    return FamilyResult(tests, where, independence(a, b, alpha / tests), screened)


def every_lag(mask, alpha: float = ALPHA, top: int = SCREEN_TOP) -> FamilyResult:
    """Independence of the bits of one mask (in its flat order) at every lag 1 <= l <= n/2: the family is
    both groups of disjoint pairs (lag_groups) at every such lag, T = 2 floor(n/2) exact tests."""
    z = np.asarray(mask, bool).ravel()
    half = z.size // 2
    if half < 1:
        return _worst_of([], 1, alpha, "")
    r = np.abs(correlation_screen(z)[1: half + 1])
    lags = 1 + np.argsort(r)[::-1][:top]
    cands = [(f"elements (i, i+{int(l)}) from offset {off}", a, b) for l in lags
             for off, (a, b) in zip((0, int(l)), lag_groups(z, int(l)))]
    return _worst_of(cands, 2 * half, alpha, f"screened lags {sorted(int(l) for l in lags)} by FFT "
                                            f"(|r| up to {float(r.max()):.1f})")


def every_shift(a, b, alpha: float = ALPHA, top: int = SCREEN_TOP, tests: int | None = None,
                label: str = "") -> FamilyResult:
    """Independence of two masks of one size at every shift |s| <= n/2: pairs (a_i, b_{i+s}), disjoint,
    one exact test per shift, T = 2 floor(n/2) + 1 (or `tests`, for a family over several mask pairs)."""
    a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
    n, half = a.size, a.size // 2
    r = np.abs(correlation_screen(a, b)[n - 1 - half: n + half])
    shifts = np.argsort(r)[::-1][:top] - half
    cands = [(f"{label}elements (i, i{int(s):+d})", a[max(0, -s): n - max(0, s)], b[max(0, s): n - max(0, -s)])
             for s in (int(v) for v in shifts)]
    return _worst_of(cands, tests or 2 * half + 1, alpha, f"screened shifts {sorted(int(s) for s in shifts)} by FFT "
                                                          f"(|r| up to {float(r.max()):.1f})")


def call_distance_groups(calls: int, d: int) -> list:
    """Disjoint pairs of calls (j, j + d) of a sequence of `calls`: two groups where 2d <= calls, else one."""
    idx = np.arange(calls)
    return [(i.ravel(), j.ravel()) for i, j in lag_groups(idx, d)]


def every_call_distance(masks, alpha: float = ALPHA, top: int = SCREEN_TOP) -> FamilyResult:
    """Independence of the masks of C successive calls (C x m bits) at every call distance 1 <= d < C,
    element by element: for each group of disjoint call pairs (call_distance_groups) the m elements of all
    its pairs of calls make one exact test; T = the number of groups over all d. Screen: the sums of the
    diagonals of the Gram matrix of the centred masks."""
    z = np.asarray(masks, bool)
    c, m = z.shape
    q = float(z.mean())
    x = z.astype(np.float64) - q
    gram = x @ x.T
    v = (q * (1 - q)) or 1.0
    score = np.array([abs(np.trace(gram, offset=d)) / (v * math.sqrt((c - d) * m)) for d in range(1, c)])
    ds = 1 + np.argsort(score)[::-1][:top]
    tests = sum(len(call_distance_groups(c, d)) for d in range(1, c))
    cands = [(f"calls (j, j+{int(d)}) group {g}", z[i], z[j]) for d in ds
             for g, (i, j) in enumerate(call_distance_groups(c, int(d)))]
    return _worst_of(cands, tests, alpha, f"screened call distances {sorted(int(d) for d in ds)} "
                                          f"(|r| up to {float(score.max()):.1f})")


def sweep_sizes(max_exponent: int) -> list:
    """2^k - 1, 2^k, 2^k + 1 for k = 1..max_exponent (1 included once)."""
    return sorted({n for k in range(1, max_exponent + 1) for n in (2 ** k - 1, 2 ** k, 2 ** k + 1)})


def scale_power_table(max_exponent: int = 22) -> list:
    """The keep-rate errors of the size sweep quoted in dropnorm/properties/test_dropout_dependence.py: the
    smallest detected with power POWER at the largest size, each size at alpha / (number of sizes)."""
    sizes = sweep_sizes(max_exponent)
    m, n = len(sizes), sizes[-1]
    lines = [f"size sweep to 2^{max_exponent}: {m} sizes, keep-count tests at alpha/{m} = {ALPHA / m:.3g}"]
    for q in (0.5, 0.1, 0.01, 0.001):
        d = next(i * 1e-5 for i in range(1, 100000)
                 if min(power(n, q, q + i * 1e-5, ALPHA / m), power(n, q, q - i * 1e-5, ALPHA / m)) >= POWER)
        lines.append(f"  n = {n}, q = {q}: keep rate off by {d:.2g} detected with power >= {POWER}")
    return lines
