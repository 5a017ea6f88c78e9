"""Blind probe: BatchNorm1d whose two-stage mean averages block means without weights.

Defect: when a channel has more than 4096 values (N*L > 4096), the batch mean is computed as the
plain average of the means of blocks of 4096 values (in logical (n, l) order) -- the last, partial
block gets the same weight as the full ones. The variance is then taken about that mean (two-pass,
so it is var + (mean error)^2), and the running mean inherits the error. Exact when the count is a
multiple of 4096 or the blocks happen to have equal means; e.g. 4097 values: the mean is (mean of
4096 + last value) / 2.

Inspired by: two-stage (split-K) reductions that write per-block partial means and finish with a
second kernel averaging them, forgetting that the tail block is short (a classic in hand-written
column reductions; cf. NVIDIA Apex / oneDNN-style "grid reduction" bugs with non-divisible sizes).

Region: BatchNorm1d, batch statistics, per-channel count N*L > 4096 and not a multiple of 4096.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

BLOCK = 4096


def block_stats(xc):
    flat = U.per_channel(xc)  # (C, M)
    means = torch.stack([b.mean(1) for b in torch.split(flat, BLOCK, dim=1)], 0)
    mean = means.mean(0)
    var = ((flat - mean[:, None]) ** 2).mean(1)
    return mean, var


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        if x.dim() in (2, 3) and (x.numel() // max(x.shape[1], 1)) > BLOCK and U.uses_batch_stats(self):
            count = x.numel() // x.shape[1]
            if count % BLOCK:
                return U.manual_bn(self, x, block_stats)
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(5000, 4) * 2 + 3
    p, t = BatchNorm1d(4).train(), torch.nn.BatchNorm1d(4).train()
    y, r = p(x), t(x)
    d = U.max_abs(y, r)
    dm = float((p.running_mean - t.running_mean).abs().max())
    x2 = torch.randn(4096, 4)
    d2 = U.max_abs(BatchNorm1d(4).train()(x2), torch.nn.BatchNorm1d(4).train()(x2))
    return {"observable": d > 1e-4,
            "detail": f"(5000,4): max |y - torch| {d:.3g}, running_mean diff {dm:.3g}; (4096,4): {d2:.3g}"}


U.reexport(globals())
