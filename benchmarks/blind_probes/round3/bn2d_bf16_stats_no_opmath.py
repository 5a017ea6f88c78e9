"""Blind probe: BatchNorm2d that accumulates bfloat16/float16 batch statistics in the input dtype.

Defect: for 16-bit inputs the per-channel sums (for the mean and for the squared deviations) are
accumulated in the input dtype -- 16 lanes (one 256-bit vector of 16-bit values; more lanes for very
long channels, at most 2048 steps each), each a running bfloat16/float16 sum, then a pairwise
combine, all rounded to 16 bits at every step -- instead of in float32 (the "opmath"/acc_type). With
a few thousand values per channel the running sums reach magnitudes where a bfloat16 ulp is larger
than the addends' spread: the mean and variance are biased, the output is shifted/scaled, and the
running statistics are wrong. Normalisation itself and float32/float64 inputs are torch's.

Inspired by: kernels written with `scalar_t` accumulators instead of `at::opmath_type<scalar_t>` /
`acc_type<scalar_t, true>` (ATen's BN uses opmath for reduced-precision inputs:
aten/src/ATen/native/cpu/batch_norm_kernel.cpp, batch_norm_cpu_collect_stats_*_impl with
`using opmath_t = at::opmath_type<scalar_t>`; aten/src/ATen/native/cuda/Normalization.cuh, acc_type).

Region: BatchNorm2d, batch statistics, bfloat16 or float16 input, hundreds to thousands of values
per channel (visible from ~1000 with a non-zero mean).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch

import blindprobe_util as U
import _r3util as R

LANES = 16
MAX_STEPS = 2048


def _lowp_sum(v, dt):
    """v: (C, M) -> (C,) sum accumulated in dtype dt (lane-wise running sums, then pairwise)."""
    C, M = v.shape
    lanes = LANES
    while -(-M // lanes) > MAX_STEPS:  # very long channels: more lanes (threads), at most MAX_STEPS each
        lanes *= 2
    K = -(-M // lanes)
    pad = torch.zeros(C, K * lanes - M, dtype=dt, device=v.device)
    v = torch.cat([v.to(dt), pad], 1).view(C, K, lanes)
    acc = torch.zeros(C, lanes, dtype=dt, device=v.device)
    for k in range(K):
        acc = acc + v[:, k]
    L = lanes
    while L > 1:
        L //= 2
        acc = acc[:, :L] + acc[:, L:2 * L]
    return acc[:, 0]


def lowp_stats(dt):
    def stats(xc):
        v = U.per_channel(xc).to(dt)
        n = v.shape[1]
        mean = _lowp_sum(v, dt) / n
        var = _lowp_sum((v - mean.view(-1, 1)) ** 2, dt) / n
        return mean.to(xc.dtype), var.to(xc.dtype)
    return stats


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        if x.dim() == 4 and x.dtype in (torch.bfloat16, torch.float16) and x.numel() and U.uses_batch_stats(self):
            return R.bn_forward(self, x, lowp_stats(x.dtype))
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x64 = torch.randn(16, 2, 16, 16, dtype=torch.float64) + 3
    x = x64.to(torch.bfloat16)
    p, t = BatchNorm2d(2).train(), torch.nn.BatchNorm2d(2).train()
    yp, yt = p(x), t(x)
    ref = torch.nn.BatchNorm2d(2).double().train()(x.double())
    dp, dt_ = U.max_abs(yp, ref), U.max_abs(yt, ref)
    dm = float((p.running_mean - t.running_mean).abs().max())
    dv = float((p.running_var - t.running_var).abs().max())
    return {"observable": dp > 4 * max(dt_, 0.02),
            "detail": f"bfloat16 N(3,1), (16,2,16,16) (4096 per channel): max |y - float64 ref| probe {dp:.3g} vs torch {dt_:.3g}; "
                      f"running_mean diff {dm:.3g}, running_var diff {dv:.3g}"}


U.reexport(globals())
