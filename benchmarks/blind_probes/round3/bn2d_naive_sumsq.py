"""Blind probe: BatchNorm2d whose batch variance is E[x^2] - E[x]^2 in float32.

Defect: the batch statistics are gathered in one pass as sum(x) and sum(x*x) in the float32 compute
dtype and the biased variance is taken as sumsq/n - mean^2 (clamped at 0). For data with a large
mean relative to its spread (|mean|/std of ~1e3 and more) the subtraction cancels catastrophically:
the variance, hence the output scale and the running variance, are wrong by orders of magnitude.
Centred data agree with torch to float32 rounding (relative ~1e-6).

Inspired by: one-pass "sum / sum of squares" BatchNorm reductions (e.g. the naive path of fused BN
kernels and SyncBatchNorm's all-reduce of sum and sum of squares before combining), versus ATen's
two-pass / Welford statistics (aten/src/ATen/native/cpu/batch_norm_kernel.cpp,
batch_norm_cpu_collect_stats_*; aten/src/ATen/native/cuda/Normalization.cuh, WelfordOps).

Region: BatchNorm2d, batch statistics (training, or eval without running stats), float32/16-bit
inputs whose per-channel mean is large compared with the per-channel standard deviation.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch

import blindprobe_util as U
import _r3util as R


def naive_stats(xc):
    dims = U.reduce_dims(xc)
    n = xc.numel() // xc.shape[1]
    mean = xc.sum(dims) / n
    var = (xc * xc).sum(dims) / n - mean * mean
    return mean, var.clamp_min(0)


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        if x.dim() == 4 and x.numel() and x.dtype != torch.float64 and U.uses_batch_stats(self):
            return R.bn_forward(self, x, naive_stats)
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 8, 8) + 1e4
    p, t = BatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    yp, yt = p(x), t(x)
    d = U.max_abs(yp, yt)
    rv = f"running_var probe {p.running_var.tolist()} torch {[round(v, 4) for v in t.running_var.tolist()]}"
    x2 = torch.randn(8, 3, 8, 8)
    d2 = U.max_abs(BatchNorm2d(3).train()(x2), torch.nn.BatchNorm2d(3).train()(x2))
    return {"observable": d > 0.1,
            "detail": f"N(1e4, 1), (8,3,8,8) float32, training: max |y - torch| {d:.3g}; {rv}; centred N(0,1): {d2:.2g}"}


U.reexport(globals())
