"""Tolerances of the model checks (MD-*), each derived next to its constant.

A whole network has no closed-form error bound the way one layer does (dropnorm/spec/tolerances.py):
its rounding errors pass through every later layer and depend on the weights. So the model checks
measure the network's own rounding error and derive each bound from it.

The float64 anchor. For a check that compares a float32 computation B (folded, exported, compiled,
channels_last, autocast) with the eager float32 computation A of the same mathematical function f,
the audit also evaluates f in float64 (a deep copy, model.double()): y64. Its own error is
(u64 / u32) = 2^-29 times the float32 one to first order, negligible here. Then

    e32 = max |A - y64|          the realised rounding error of the eager float32 network at this input
                                 (max over every output element: a batch of outputs, not one value)

is a measurement of how strongly this network amplifies unit roundoff at this input. A correct B
performs the same operations up to re-association (a fold adds at most 6 roundings to a K-term sum
of the folded layer: gamma_{K+8} against gamma_{K+2}, dropnorm/reference/folding.py, i.e. at most
(K+8)/(K+2) <= 3 times the first-order bound of that layer) and so has a first-order error of the
same size: |B - y64| <= R e32 + F.

R = RATIO = 16: the ratio of the realised max errors of two correct evaluations. Two correct
evaluations differ in their rounding sequences, not in the first-order bound; their realised errors
scatter around it. 3 (the fold's extra roundings) times a scatter allowance of 4 (the max over M >= 8
output elements of the same first-order distribution: P(max_B > 4 max_A) < 1e-4 for M = 8 under a
Gaussian error model, smaller for more outputs), rounded up to a power of two: 16.
F = FLOOR_ULPS * u * max|y64| with FLOOR_ULPS = 8: where the float32 network happens to be exact
(e32 = 0, or tiny for an M = 1 output), the rounding of the output itself and of the last layer's
few operations, a few ulps of the largest output; 8 ulps.

Measured (benchmarks/results/model-clients.jsonl, the five clients at commit 781b502, torch 2.14.1, one run
each): |B - y64| / e32 was at most 1.35 for folding, 1.86 for ONNX Runtime and 2.0 for torch.compile's eval
output, against RATIO = 16; the channels_last running statistics reached at most 0.35 and the bfloat16 ones
0.052 of their bounds.

Defects these bounds must catch are far above them: a fold that ignores a ported eps (1e-3 read as
1e-5) changes outputs by ~5e-4 relative, a batch-statistics eval by O(1), a dropped bias by |b|.

Batch independence (MD-EVAL-01) compares two float64 evaluations (sample i in two batches): the
same bound with e64 = e32 * u64 / u32 (first order: the same operations at a smaller unit
roundoff) and F at u64.

Low precision (MD-LOWP-01): autocast runs the convolutions and matrix products on bfloat16 inputs
(accumulated in float32). To first order every rounding is then at most u_bf16 relative, so the
running statistics' error is at most (u_bf16 / u32) times the float32 step's realised error e32,
times R for the scatter, plus a floor of FLOOR_ULPS bfloat16 ulps of the momentum-weighted statistic
input magnitude (mean |x| for the mean, mean x^2 for the variance), which covers the rounding of the
BatchNorm's own bfloat16 input that e32 does not see.
"""
from __future__ import annotations

import torch

RATIO = 16          # realised-error scatter between two correct evaluations; derivation above
FLOOR_ULPS = 8      # ulps of the output (or statistic input) magnitude; derivation above

U = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def float32_bound(e32: float, scale: float) -> float:
    """|B - y64| allowed for a correct float32 evaluation B: RATIO e32 + FLOOR_ULPS u32 scale."""
    return RATIO * e32 + FLOOR_ULPS * U[torch.float32] * scale


def float64_bound(e32: float, scale: float) -> float:
    """|B - A| allowed between two float64 evaluations: 2 (RATIO e64 + FLOOR_ULPS u64 scale),
    e64 = e32 u64 / u32 (each side's error bound, twice)."""
    e64 = e32 * U[torch.float64] / U[torch.float32]
    return 2 * (RATIO * e64 + FLOOR_ULPS * U[torch.float64] * scale)


def lowp_bound(e32: float, momentum_magnitude: float, dtype=torch.bfloat16) -> float:
    """Running statistic after one low-precision step against the float32 step: RATIO (u/u32) e32 plus
    FLOOR_ULPS u times the momentum-weighted magnitude of what the statistic averages."""
    return RATIO * (U[dtype] / U[torch.float32]) * e32 + FLOOR_ULPS * U[dtype] * momentum_magnitude


# MD-SHIFT-01: the variance a BatchNorm accumulates in training against the variance it sees in eval.
# Both are sample variances of n values per channel; for a correct model without a shift their
# ratio has relative standard deviation about sqrt(2/n_train + 2/n_eval) (the variance of a sample
# variance is 2 sigma^4 / (n - 1) for Gaussian data; heavier tails give more, hence the z of 8).
SHIFT_Z = 8


def shift_threshold(n_train: int, n_eval: int) -> float:
    """|rv_train / var_eval - 1| beyond which MD-SHIFT-01 warns."""
    return SHIFT_Z * (2.0 / max(n_train - 1, 1) + 2.0 / max(n_eval - 1, 1)) ** 0.5


# MD-COMPILE-01/train-stats. Eager CPU BatchNorm accumulates its batch statistics in float64
# (ATen batch_norm_cpu_collect_stats: at::acc_type<float, /*is_cuda=*/false> is double) and rounds them once
# to float32; torch.compile's inductor kernels accumulate them in float32. So the compiled training step does
# not perform "the same operations up to re-association", the premise of RATIO, and two terms are added:
#  (i) each BatchNorm's own statistic carries the float32 summation error of n values,
#      gtilde_{n-1}(LAMBDA) * M with M the momentum-weighted mean |x| (mean) or 2 mean x^2 (variance)
#      (Higham and Mary's probabilistic bound, LAMBDA = 8, as dropnorm/spec/tolerances.summation_gamma);
# (ii) the input of every later BatchNorm passed through earlier training-mode BatchNorms whose normalisation
#      carries that larger error: to first order each such layer's rounding contribution grows from about u32
#      (one rounding of a float64 sum) to gtilde_{n-1}(LAMBDA) / u32 = about LAMBDA sqrt(n) times it, so the
#      propagated part of the error is at most that factor times eager's realised error e32.
# Measured before this term (one run, an unseeded efficientnet_b0, torch 2.14.1): two BatchNorms of
# features.6.2 outside the old bound by 10.3x; the same BatchNorms compiled alone on the captured input
# give eager's running statistics bit for bit (benchmarks/results/model-clients.jsonl, the report of issue 27).
def compile_train_bound(e32: float, magnitude: float, n_max: int, n: int, stat_scale: float) -> float:
    """Running statistic after one compiled training step against the float64 step (terms (i), (ii) above)."""
    from dropnorm.spec.tolerances import summation_gamma
    u = U[torch.float32]
    growth = max(1.0, summation_gamma(max(n_max - 1, 1), u) / u)
    return (RATIO * growth * e32 + summation_gamma(max(n - 1, 1), u) * magnitude
            + FLOOR_ULPS * u * stat_scale)
