"""Correct variant: BatchNorm1d/2d/3d with Welford/Chan-merged batch statistics, from scratch.

Not a defect: every forward (train and eval) goes through blindprobe_util.manual_bn; batch statistics
are computed per channel in blocks of 1024 values (exact block mean and centred M2), merged pairwise
with Chan et al.'s update M2 = M2_a + M2_b + delta^2 n_a n_b / n (the term bn2d_chunk_merge64 drops);
normalisation is (x - mean) * rsqrt(var + eps) * gamma + beta in float32 (float64 for float64
input); the running update uses the unbiased variance, momentum or the cumulative average.
Agreement with torch is within float32 rounding.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

BLOCK = 1024


def welford_stats(xc):
    flat = U.per_channel(xc)  # (C, M)
    parts = []
    for blk in torch.split(flat, BLOCK, dim=1):
        mu = blk.mean(1)
        parts.append((blk.shape[1], mu, ((blk - mu[:, None]) ** 2).sum(1)))
    while len(parts) > 1:
        merged = []
        for i in range(0, len(parts) - 1, 2):
            (na, ma, sa), (nb, mb, sb) = parts[i], parts[i + 1]
            n = na + nb
            delta = mb - ma
            merged.append((n, ma + delta * (nb / n), sa + sb + delta * delta * (na * nb / n)))
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    n, mean, m2 = parts[0]
    return mean, m2 / n


class _WelfordMixin:
    def forward(self, x):
        return U.manual_bn(self, x, welford_stats)


class BatchNorm1d(_WelfordMixin, torch.nn.BatchNorm1d):
    pass


class BatchNorm2d(_WelfordMixin, torch.nn.BatchNorm2d):
    pass


class BatchNorm3d(_WelfordMixin, torch.nn.BatchNorm3d):
    pass


# The module's relatives are this implementation too (not torch's re-exported classes): LazyBatchNormNd
# becomes this file's BatchNormNd and runs its forward from the first call; SyncBatchNorm (one process)
# runs the same forward, and convert_sync_batchnorm yields this file's SyncBatchNorm.
class LazyBatchNorm1d(_WelfordMixin, torch.nn.LazyBatchNorm1d):
    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_WelfordMixin, torch.nn.LazyBatchNorm2d):
    cls_to_become = BatchNorm2d


class LazyBatchNorm3d(_WelfordMixin, torch.nn.LazyBatchNorm3d):
    cls_to_become = BatchNorm3d


class SyncBatchNorm(_WelfordMixin, torch.nn.SyncBatchNorm):
    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        out = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
        for m in out.modules():
            if type(m) is torch.nn.SyncBatchNorm:
                m.__class__ = cls
        return out


def confirm():
    torch.manual_seed(0)
    res = []
    bad = False
    for shape, cls, tcls in (((3000, 4), BatchNorm1d, torch.nn.BatchNorm1d),
                             ((130, 3, 4, 4), BatchNorm2d, torch.nn.BatchNorm2d),
                             ((4, 2, 3, 3, 3), BatchNorm3d, torch.nn.BatchNorm3d)):
        x = torch.randn(*shape) * 2 + 5
        p, t = cls(shape[1], momentum=None).train(), tcls(shape[1], momentum=None).train()
        d = [U.max_abs(p(x), t(x)), float((p.running_mean - t.running_mean).abs().max()),
             float((p.running_var - t.running_var).abs().max())]
        xg = x.clone().requires_grad_(True)
        xt = x.clone().requires_grad_(True)
        g = torch.randn_like(x)
        p(xg).backward(g)
        t(xt).backward(g)
        d.append(U.max_abs(xg.grad, xt.grad))
        p.eval(), t.eval()
        d.append(U.max_abs(p(x), t(x)))
        res.append(f"{shape}: max diff {max(d):.2g}")
        bad = bad or max(d) > 1e-4
    return {"observable": bad, "detail": "train output, running stats, dx, eval output vs torch (float32): " + "; ".join(res)}


U.reexport(globals())
