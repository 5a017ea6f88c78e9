"""Blind probe: BatchNorm2d whose chunked (Chan/Welford) merge drops the between-chunk term for N > 64.

Defect: in training, batches of more than 64 samples are reduced in chunks of 64 samples; each chunk's
(count, mean, M2) is exact and the merged mean is the correct weighted mean, but the merged M2 is the
plain sum of the chunks' M2 -- the n_a n_b/(n_a+n_b) delta^2 term of Chan's parallel update is missing.
The batch variance is therefore underestimated by the between-chunk variance of the chunk means
(about 1/64 relative for iid data, all of it when chunks differ in mean): the output is over-scaled
and the running variance too small. Batches of <= 64 samples go through torch unchanged.

Inspired by: split-batch / multi-block Welford reductions (cuDNN-style persistent kernels, SyncBN's
all-gather merge, Apex's welford_parallel) where the combine step is written as M2 = M2_a + M2_b.

Region: BatchNorm2d, training (or track_running_stats=False), N > 64; strongest when the first and
later 64-sample chunks differ in mean (sorted or grouped batches).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

CHUNK = 64


def chunked_stats(xc):
    shape = [1, xc.shape[1]] + [1] * (xc.dim() - 2)
    n_tot, mean_acc, m2 = 0, None, None
    parts = []
    for chunk in torch.split(xc, CHUNK, dim=0):
        dims = U.reduce_dims(chunk)
        n = chunk.numel() // chunk.shape[1]
        mu = chunk.mean(dims)
        parts.append((n, mu, ((chunk - mu.view(shape)) ** 2).sum(dims)))
    n_tot = sum(p[0] for p in parts)
    mean_acc = sum(p[0] * p[1] for p in parts) / n_tot
    m2 = sum(p[2] for p in parts)  # missing: + sum n_i (mu_i - mean)^2
    return mean_acc, m2 / n_tot


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        if x.dim() == 4 and x.shape[0] > CHUNK and U.uses_batch_stats(self):
            return U.manual_bn(self, x, chunked_stats)
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(128, 3, 4, 4)
    x[64:] += 1.0  # second chunk shifted
    p, t = BatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    y, r = p(x), t(x)
    d = U.max_abs(y, r)
    dv = float((p.running_var - t.running_var).abs().max())
    torch.manual_seed(0)
    x2 = torch.randn(64, 3, 4, 4)
    p2, t2 = BatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    d2 = U.max_abs(p2(x2), t2(x2))
    return {"observable": d > 1e-3,
            "detail": f"N=128 (second 64 shifted by 1): max |y - torch| {d:.3g}, running_var diff {dv:.3g}; "
                      f"N=64: max |y - torch| {d2:.3g}"}


U.reexport(globals())
