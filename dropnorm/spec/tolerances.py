"""Floating-point tolerances, each derived from the dtype's unit roundoff and the operation.

Notation: u_o the unit roundoff of the output dtype, u_w that of the working
(accumulation) precision, gamma_k = k u_w / (1 - k u_w) [Higham, Accuracy and
Stability of Numerical Algorithms, 2nd ed., Lemma 3.1]. Summing n terms in any
order (recursive, pairwise, blocked) has |error| <= gamma_{n-1} * sum|terms|
[Higham 4.2]; the suite uses that worst case, so no summation order a correct
implementation may pick can exceed it. Low-precision inputs must be
accumulated in at least float32 (the ONNX spec and every framework surveyed
in shared/notes/framework-conventions.md do so), hence u_w = u(float32) for
float16/bfloat16 inputs.

First-order bounds are multiplied by SAFETY = 2 to cover the O(u^2) terms that
first-order analysis drops; for every size the suite generates (n u_w < 1e-2)
those terms are below 1% of the first-order bound, so a factor of 2 is ample.

Probabilistic summation bound (issue 14). The worst case gamma_{n-1} is
reached only when every rounding error takes its largest value with the same
sign; correct summations of data reach about sqrt(n) u. Higham and Mary [A New
Approach to Probabilistic Rounding Error Analysis, SIAM J. Sci. Comput. 41(5),
2019, Theorem 2.4 and Theorem 3.1 (inner products; a sum is the special case)]
model the rounding errors delta_k as independent, mean zero, |delta_k| <= u, and
prove that then
  |error of a sum of n terms| <= gtilde_{n-1}(lambda) sum |terms|,
  gtilde_n(lambda) = exp(lambda sqrt(n) u + n u^2 / (1 - u)) - 1,
with probability at least 1 - 2n exp(-lambda^2 (1 - u)^2 / 2). LAMBDA = 8 makes
that failure probability at most 2n e^-32 = 2.5e-14 n: 1.7e-9 for the largest
channel the suite draws (n = 65536), so over every sum of a ci run (about 10^4
channels) the chance that any bound fails is below 1e-5. summation_gamma
takes min(gamma_{n-1}, gtilde_{n-1}(LAMBDA)): the deterministic bound is the
smaller one for n <= LAMBDA^2 = 64, the probabilistic one up to 32x smaller at
n = 65536. The model is not assumed for structured data (a constant channel
sums n equal values, whose errors need not be independent): those checks pass
probabilistic=False and keep the worst case.

Half the digits (BN-NUM-03). A conforming variance keeps at least half the
working precision's digits of var + eps (the quantity that normalises):
|d var| <= sqrt(u_w) (var + eps) beyond what a two-pass variance may lose. So
the one-pass allowance of bn_stat_errors is capped at HALF_DIGITS(u_w) =
sqrt(u_w) (var + eps); the two-pass bound is never capped.
"""
from __future__ import annotations

import numpy as np

from dropnorm.spec.dtypes import UNIT_ROUNDOFF

# Rounding a result into a dtype errs by at most u_o |result| for a normal result, and by at most
# half the smallest subnormal for one below the normal range (gradual underflow): every bound of a
# value rounded to the output dtype adds ETA_O per rounding there. Only float16 makes it matter
# (2^-25 = 3.0e-8; the eval gradient of a tiny dy is easily 1e-6 there).
UNDERFLOW = {"float64": 2.0 ** -1075, "float32": 2.0 ** -150, "float16": 2.0 ** -25, "bfloat16": 2.0 ** -134}

SAFETY = 2.0


def working_roundoff(dtype: str) -> float:
    """u_w: float16/bfloat16 accumulate in float32; float32/float64 in themselves."""
    return UNIT_ROUNDOFF["float32"] if dtype in ("float16", "bfloat16") else UNIT_ROUNDOFF[dtype]


def gamma(k: int | np.ndarray, u: float) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    return k * u / (1.0 - k * u)


# Higham-Mary lambda: failure probability <= 2n exp(-LAMBDA^2 (1-u)^2/2) = 2.5e-14 n per sum (header).
LAMBDA = 8.0


def gamma_tilde(k: int | np.ndarray, u: float, lam: float = LAMBDA) -> np.ndarray:
    """Higham-Mary probabilistic gtilde_k(lambda) = exp(lambda sqrt(k) u + k u^2/(1-u)) - 1 (header)."""
    k = np.asarray(k, dtype=np.float64)
    return np.expm1(lam * np.sqrt(k) * u + k * u * u / (1.0 - u))


def summation_gamma(k: int, u: float, *, probabilistic: bool = True) -> float:
    """Relative bound (on sum |terms|) of a k+1-term sum: min(gamma_k, gtilde_k(LAMBDA)), or gamma_k."""
    det = float(gamma(k, u))
    return min(det, float(gamma_tilde(k, u))) if probabilistic else det


def half_digits(u: float) -> float:
    """sqrt(u_w): the relative error of var + eps at which half of the working digits are lost."""
    return float(np.sqrt(u))


# ------------------------------------------------------------------ dropout
def dropout_scale_rtol(dtype: str) -> float:
    """Relative tolerance of a kept value y = x * (1/(1-p)) (DO-TRAIN-01, D2-TRAIN-02).

    Computing the scale in the dtype rounds 1-p (u_o), its reciprocal (u_o) and the
    product with x (u_o): |y - x s| <= ((1 + u_o)^3 - 1) |x s| = (3 u_o + 3 u_o^2 + u_o^3)|x s|.
    ATen does exactly this (noise.div_(1 - p) with 1 - p rounded to the dtype): torch 2.13,
    Dropout and Dropout2d, p = 0.7934378338640514, float32: scale 4.841157913 = fl(1/fl(1-p)),
    where fl(1/(1-p)) = 4.841157436; x = -1.7924993 then errs by 2.4 u_o, beyond two roundings.
    An implementation may compute in float32 first (opmath) and round once more at the end,
    adding at most 2 u(float32) for the low-precision dtypes.
    """
    u = UNIT_ROUNDOFF[dtype]
    extra = 2 * UNIT_ROUNDOFF["float32"] if dtype in ("float16", "bfloat16") else 0.0
    return 3 * u + 3 * u * u + u ** 3 + extra


# ---------------------------------------------------------------- batchnorm
def _per_channel(vec, ndim):
    return np.asarray(vec, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def _axes(ndim):
    return (0,) + tuple(range(2, ndim))


def bn_stat_errors(x: np.ndarray, dtype: str, *, one_pass: bool = True, eps: float = 0.0,
                   probabilistic: bool = True, cap: bool = True):
    """Bounds on the computed per-channel mean and biased variance.

    G = summation_gamma(n - 1) (probabilistic unless probabilistic=False, header).
    mean: mu^ = fl(sum x / n): |d mu| <= (G + u_w) * mean|x|.
    var, two-pass: sum (x - mu^)^2 / n equals var + d mu^2 exactly before
      rounding (the cross term vanishes); each term carries a subtraction and a
      square (2 u_w), the sum G and the division u_w:
      |d var| <= (G + 3 u_w) (var + d mu^2) + d mu^2.
    var, one-pass E[x^2] - E[x]^2 (one_pass=True allows it): the two means carry
      G + 2 u_w relative error each on E[x^2] and on mu^2 (= var + mu^2 at most
      in magnitude), so |d var| <= (G + 3 u_w) (2 mean(x^2)) + 2 |mu| |d mu| + d mu^2,
      but only up to HALF_DIGITS: sqrt(u_w) (var + eps) (BN-NUM-03; header).
      Beyond that a one-pass variance has lost more than half the digits and the
      bound falls back to the two-pass one. cap=False: the former, uncapped allowance
      (benchmarks/err_tolerance.py compares the two).
    Returns (mean, var, n, d_mean, d_var) per channel.
    """
    axes = _axes(x.ndim)
    n = x.size // x.shape[1]
    u = working_roundoff(dtype)
    G = summation_gamma(max(n - 1, 1), u, probabilistic=probabilistic)
    mean = x.mean(axis=axes)
    var = ((x - _per_channel(mean, x.ndim)) ** 2).mean(axis=axes)
    d_mean = (G + u) * np.abs(x).mean(axis=axes)
    two_pass = (G + 3 * u) * (var + d_mean ** 2) + d_mean ** 2
    if one_pass:
        ex2 = (x ** 2).mean(axis=axes)
        one = (G + 3 * u) * 2 * ex2 + 2 * np.abs(mean) * d_mean + d_mean ** 2
        d_var = np.maximum(two_pass, np.minimum(one, half_digits(u) * (var + eps)) if cap else one)
    else:
        d_var = two_pass
    return mean, var, n, d_mean, d_var


def bn_xhat_tau(n: int, dtype: str) -> float:
    """tau in the largest |xhat| a consistent normalisation can return, sqrt(n) (1 + tau) (BN-NUM-01/bounded;
    bn_xhat_bound adds what a running centre such as Welford's may add).

    For ANY centre m, (x_i - m)^2 <= sum_j (x_j - m)^2 (one term of a sum of squares), so an
    implementation that divides x_i - m by the root of the variance about that same m
    (two-pass, shifted two-pass) has |xhat_i| <= sqrt(n) whatever the rounding error
    of m; the exact xhat even has sqrt(n - 1) (Samuelson). Rounding: e_j = fl(x_j - m) =
    (x_j - m)(1 + delta); v^ = fl(sum e_j^2 / n) >= (1 - gamma_{n+1}) sum e_j^2 / n, so
    e_i^2 <= n v^ / (1 - gamma_{n+1}); the add of eps, the sqrt, the division and the
    rounding to the output dtype add 3 u_w + u_o relative:
      tau = SAFETY (gamma_{n+1}(u_w)/2 + 3 u_w + u_o)   (worst case: no probabilistic model).
    A constant channel (every e_j equal) has |xhat| <= 1 + tau by the same argument.
    """
    u, uo = working_roundoff(dtype), UNIT_ROUNDOFF[dtype]
    return SAFETY * (float(gamma(n + 1, u)) / 2 + 3 * u + uo)


def bn_xhat_bound(x: np.ndarray, eps: float, dtype: str) -> np.ndarray:
    """Per channel, the largest |xhat| a correct layer can return on x (BN-NUM-01/bounded).

    bn_xhat_tau's sqrt(n) (1 + tau) holds where the variance is taken about the same computed centre m that
    x is centred on (two-pass, shifted two-pass). A running centre does not give that in floating point:
    Welford's M2 sums (x_k - m_{k-1})(x_k - m_k) over the rounded running means, which makes it the sum of
    squares about the exact mean mu, while x is centred on the final rounded m. torch.var_mean (CPU) on a
    float32 channel of 9 values at 1e8 spread over two ulps returns |xhat| = 3.16 > sqrt(9) = 3
    (dropnorm.zoo.variants.var_mean_statistics, found when every example ran every hard input kind).
    So with |m - mu| <= d_mu and a variance v^ >= v - d_var (bn_stat_errors, worst case, the bounds of
    a correct summation): |x_i - m| <= |x_i - mu| + d_mu <= sqrt(n v) + d_mu, and
      |xhat_i| <= max(sqrt(n), (sqrt(n v) + d_mu) / sqrt(max(v - d_var, 0) + eps)) (1 + tau).
    Where the channel is well conditioned (d_mu, d_var << v) this is sqrt(n) (1 + tau + O(d_mu/sqrt(n v)));
    it grows only where the input's spread is within the rounding of its mean. A constant channel keeps
    its own bound 1 + tau (Welford's running mean is exact there, and two-pass gives |d|/sqrt(d^2 + eps)).
    """
    _, var, n, d_mean, d_var = bn_stat_errors(np.asarray(x, np.float64), dtype, one_pass=False, probabilistic=False)
    tau = bn_xhat_tau(n, dtype)
    centre = (np.sqrt(n * var) + d_mean) / np.sqrt(np.maximum(var - d_var, 0.0) + eps)
    return np.maximum(np.sqrt(n), centre) * (1 + tau)


def bn_train_output(x: np.ndarray, weight, bias, eps: float, dtype: str, *, one_pass: bool = True,
                    probabilistic: bool = True, cap: bool = True):
    """Per-element |y - y_ref| bound for training BN (BN-TRAIN-01, BN-DTYPE-01, BN-NUM-02).

    With s = sqrt(var + eps) and xhat = (x - mu)/s, to first order
      d xhat <= d mu / s + |xhat| d var / (2 s^2) + 4 u_w |xhat|
    (the 4 u_w: the subtraction, the sqrt, the add of eps, the division), and
      d y <= |gamma| d xhat + 2 u_w (|gamma xhat| + |beta|) + u_o |y|
    (multiply and add in working precision, then one rounding to the output
    dtype). Implementations may also fold the map into y = x a + c with
    a = gamma/s and c = beta - mu a held in the input dtype (torch's CPU kernel
    does so for half inputs: 2 ulp errors seen at |y| << |x a|); rounding a, c,
    the product and the sum in the output dtype adds
      2 u_o (|x a| + |mu a| + |beta|).
    Also returns the xhat bound, reused by the gradient bounds.
    """
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64)
    b = np.zeros(x.shape[1]) if bias is None else np.asarray(bias, np.float64)
    u, uo = working_roundoff(dtype), UNIT_ROUNDOFF[dtype]
    mean, var, n, d_mean, d_var = bn_stat_errors(x, dtype, one_pass=one_pass, eps=eps, probabilistic=probabilistic,
                                                  cap=cap)
    s2 = _per_channel(var + eps, x.ndim)
    xhat = (x - _per_channel(mean, x.ndim)) / np.sqrt(s2)
    d_xhat = (_per_channel(d_mean, x.ndim) / np.sqrt(s2) + np.abs(xhat) * _per_channel(d_var, x.ndim) / (2 * s2)
              + 4 * u * np.abs(xhat))
    g, bb = _per_channel(w, x.ndim), _per_channel(b, x.ndim)
    y = g * xhat + bb
    d_y = np.abs(g) * d_xhat + 2 * u * (np.abs(g * xhat) + np.abs(bb)) + uo * np.abs(y) + UNDERFLOW[dtype]
    a = np.abs(g) / np.sqrt(s2)
    d_y = d_y + 2 * UNDERFLOW[dtype] + 2 * uo * (np.abs(x) * a + np.abs(_per_channel(mean, x.ndim)) * a + np.abs(bb))
    return SAFETY * d_y, SAFETY * d_xhat


def bn_eval_output(x: np.ndarray, running_mean, running_var, weight, bias, eps: float, dtype: str):
    """Per-element bound for eval BN (BN-EVAL-01).

    Implementations may fold the map into y = x * a + (beta - rm * a) with
    a = gamma / sqrt(rv + eps) (3 roundings in a). Each product and sum adds a
    rounding on terms of size |x a|, |rm a| and |beta|:
      d y <= 5 u_w (|x a| + |rm a|) + 2 u_w |beta| + u_o |y|.
    """
    c = x.shape[1]
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    b = np.zeros(c) if bias is None else np.asarray(bias, np.float64)
    u, uo = working_roundoff(dtype), UNIT_ROUNDOFF[dtype]
    a = _per_channel(w / np.sqrt(np.asarray(running_var, np.float64) + eps), x.ndim)
    rm, bb = _per_channel(running_mean, x.ndim), _per_channel(b, x.ndim)
    y = a * (x - rm) + bb
    return SAFETY * (5 * u * (np.abs(x * a) + np.abs(rm * a)) + 2 * u * np.abs(bb) + uo * np.abs(y)
                     + UNDERFLOW[dtype])


def bn_running(x: np.ndarray, running_mean, running_var, momentum: float, dtype: str, param_dtype: str,
               variance: str = "unbiased", eps: float = 0.0):
    """Bounds on the updated running mean and variance (BN-TRAIN-02/03/04).

    With m the new-batch weight and f = n/(n-1) (variance="unbiased") or 1 ("biased"):
    rm' = (1-m) rm + m mu^: d rm' <= m d mu + 3 u_w (|rm| + |mu|) + u_p |rm'|
    rv' = (1-m) rv + m var^ f: d rv' <= m d var f + 4 u_w (|rv| + var f) + u_p |rv'|
    with u_p the roundoff of the dtype the running statistics are stored in. d var is
    bn_stat_errors' (a one-pass variance admitted up to sqrt(u_w) (var + eps), eps as given).
    An old-value-weight convention computes m rm + (1-m) mu with its own
    momentum; its 1 - m carries one more rounding of m, covered by the 3 u_w.
    """
    mean, var, n, d_mean, d_var = bn_stat_errors(x, dtype, eps=eps)
    u = max(working_roundoff(dtype), UNIT_ROUNDOFF[param_dtype])
    up = UNIT_ROUNDOFF[param_dtype]
    m = momentum
    factor = n / max(n - 1, 1) if variance == "unbiased" else 1.0
    unb = var * factor
    rm = np.asarray(running_mean, np.float64)
    rv = np.asarray(running_var, np.float64)
    new_rm = (1 - m) * rm + m * mean
    new_rv = (1 - m) * rv + m * unb
    d_rm = m * d_mean + 3 * u * (np.abs(rm) + np.abs(mean)) + up * np.abs(new_rm)
    d_rv = m * d_var * factor + 4 * u * (np.abs(rv) + unb) + up * np.abs(new_rv)
    return SAFETY * d_rm, SAFETY * d_rv


def bn_train_grads(x: np.ndarray, dy: np.ndarray, weight, eps: float, dtype: str, param_dtype: str):
    """Bounds on dx, dgamma, dbeta for training BN (BN-GRAD-01).

    dx = gamma/s (dy - mean(dy) - xhat mean(dy xhat)). The two means carry
    (gamma_{n-1} + u_w) relative error on sums of |dy| and |dy xhat|; xhat
    carries d xhat (bn_train_output), which enters through xhat itself and
    through mean(dy xhat) (at most mean|dy| d xhat); s carries the relative
    error d s / s <= d var / (2 s^2) + 3 u_w. So per element
      d dx <= |gamma|/s [ 3 u_w (|dy| + M|dy| + |xhat| M|dy xhat|) + G (M|dy| + |xhat| M|dy xhat|)
               + d xhat (|mean(dy xhat)| + M|dy|) ] + |dx| (d s/s) + u_o |dx|
    with G = summation_gamma(n-1) + u_w (probabilistic, header) and M the per-channel mean.
    dgamma = sum dy xhat: <= G sum|dy xhat| + sum |dy| d xhat + u_p |dgamma|;
    dbeta = sum dy: <= G sum|dy| + u_p |dbeta|.
    Half-precision inputs (u_o > u_w): the backward may evaluate dx's three terms
    gamma/s dy, gamma/s mean(dy) and gamma/s xhat mean(dy xhat) in the input dtype,
    each rounded once and summed in it (as the forward's folded form, bn_train_output):
      + 2 u_o |gamma|/s (|dy| + |mean(dy)| + |xhat| |mean(dy xhat)|);
    dgamma and dbeta stay in the parameters' dtype (u_p), reductions in float32.
    """
    c, nd = x.shape[1], x.ndim
    axes = _axes(nd)
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    u, uo, up = working_roundoff(dtype), UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF[param_dtype]
    mean, var, n, d_mean, d_var = bn_stat_errors(x, dtype, eps=eps)
    _, d_xhat = bn_train_output(x, None, None, eps, dtype)
    d_xhat = d_xhat / SAFETY
    s = np.sqrt(_per_channel(var + eps, nd))
    xhat = (x - _per_channel(mean, nd)) / s
    G = summation_gamma(max(n - 1, 1), u) + u
    m_ady = np.abs(dy).mean(axis=axes, keepdims=True)
    m_adyx = np.abs(dy * xhat).mean(axis=axes, keepdims=True)
    m_dyx = (dy * xhat).mean(axis=axes, keepdims=True)
    g = _per_channel(w, nd)
    dx = g / s * (dy - dy.mean(axis=axes, keepdims=True) - xhat * m_dyx)
    rel_s = _per_channel(d_var, nd) / (2 * s ** 2) + 3 * u
    d_dx = (np.abs(g) / s * (3 * u * (np.abs(dy) + m_ady + np.abs(xhat) * m_adyx)
                             + G * (m_ady + np.abs(xhat) * m_adyx)
                             + d_xhat * (np.abs(m_dyx) + m_ady))
            + np.abs(dx) * rel_s + uo * np.abs(dx) + UNDERFLOW[dtype])
    if uo > u:  # folded evaluation in the half dtype (docstring); each of its 3 roundings may underflow
        d_dx = d_dx + 3 * UNDERFLOW[dtype] + 2 * uo * np.abs(g) / s * (
            np.abs(dy) + np.abs(dy.mean(axis=axes, keepdims=True)) + np.abs(xhat) * np.abs(m_dyx))
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    d_dgamma = G * np.abs(dy * xhat).sum(axis=axes) + (np.abs(dy) * d_xhat).sum(axis=axes) + up * np.abs(dgamma)
    d_dbeta = G * np.abs(dy).sum(axis=axes) + up * np.abs(dbeta)
    return SAFETY * d_dx, SAFETY * d_dgamma, SAFETY * d_dbeta


def bn_eval_grads(x, dy, running_mean, running_var, weight, eps: float, dtype: str, param_dtype: str):
    """Bounds for eval BN gradients (BN-GRAD-03).

    dx = dy * a with a = gamma/sqrt(rv + eps) (3 roundings) and one product:
      d dx <= 4 u_w |dx| + u_o |dx| + eta_o (its rounding to the output dtype may underflow).
    dgamma = sum dy (x - rm)/sqrt(rv + eps): each term carries 4 u_w, the sum G:
      <= (G + 4 u_w) sum|dy xhat| + u_p |dgamma|;  dbeta as in training.
    The folded form y = x a + b, b = beta - rm a (dropnorm/zoo/variants/fused_affine.py, torch's own CPU
    forward) differentiates to dgamma = (sum dy x - rm sum dy) / sqrt(rv + eps): the two sums are rounded
    before they cancel, so its error is (G + 4 u_w) (sum|dy x| + |rm| sum|dy|) / sqrt(rv + eps), which
    exceeds the term above when a channel's running mean is large against |x - rm| (the stateful sequence
    tests train the running statistics on offset inputs). The bound takes the larger of the two: a correct
    evaluation order is not a defect.
    """
    c, nd = x.shape[1], x.ndim
    axes = _axes(nd)
    n = x.size // c
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    u, uo, up = working_roundoff(dtype), UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF[param_dtype]
    G = summation_gamma(max(n - 1, 1), u) + u
    inv_s = _per_channel(1 / np.sqrt(np.asarray(running_var, np.float64) + eps), nd)
    xhat = (x - _per_channel(running_mean, nd)) * inv_s
    dx = dy * _per_channel(w, nd) * inv_s
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    folded = (np.abs(dy * x).sum(axis=axes) + np.abs(np.asarray(running_mean, np.float64)) * np.abs(dy).sum(axis=axes)) \
        * np.ravel(inv_s[(0, slice(None)) + (0,) * (nd - 2)])
    return (SAFETY * ((4 * u + uo) * np.abs(dx) + UNDERFLOW[dtype]),
            SAFETY * ((G + 4 * u) * np.maximum(np.abs(dy * xhat).sum(axis=axes), folded) + up * np.abs(dgamma)),
            SAFETY * (G * np.abs(dy).sum(axis=axes) + up * np.abs(dbeta)))
