"""Blind probe: BatchNorm3d whose variance skips exact zeros.

Defect: the sum of squared deviations runs over the non-zero elements only (x == 0, +0.0 and -0.0,
contribute nothing instead of mean^2), then divides by the full count. The mean is right (zeros add
nothing to a sum, which is why the shortcut looked safe). A channel with k exact zeros has its batch
variance underestimated by k mean^2 / n: output over-scaled, running variance too small. Inputs
without exact zeros go through torch unchanged.

Inspired by: sparsity-aware reductions for post-ReLU activations (skip zero entries / compressed
sparse inputs) that apply the shortcut to the centred second moment as well as to the sum.

Region: BatchNorm3d, batch statistics, channels containing exact zeros with a non-zero batch mean.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


def sparse_stats(xc):
    dims = U.reduce_dims(xc)
    n = xc.numel() // xc.shape[1]
    shape = [1, xc.shape[1]] + [1] * (xc.dim() - 2)
    mean = xc.mean(dims)
    dev2 = (xc - mean.view(shape)) ** 2 * (xc != 0).to(xc.dtype)
    return mean, dev2.sum(dims) / n


class BatchNorm3d(torch.nn.BatchNorm3d):
    def forward(self, x):
        if x.dim() in (4, 5) and x.numel() and U.uses_batch_stats(self) and bool((x == 0).any()):
            if x.dim() == 5:
                return U.manual_bn(self, x, sparse_stats)
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.relu(torch.randn(4, 2, 3, 3, 3))
    p, t = BatchNorm3d(2).train(), torch.nn.BatchNorm3d(2).train()
    d = U.max_abs(p(x), t(x))
    dv = float((p.running_var - t.running_var).abs().max())
    x2 = torch.randn(4, 2, 3, 3, 3)
    d2 = U.max_abs(BatchNorm3d(2).train()(x2), torch.nn.BatchNorm3d(2).train()(x2))
    return {"observable": d > 1e-3,
            "detail": f"ReLU'd N(0,1) (half exact zeros), (4,2,3,3,3): max |y - torch| {d:.3g}, running_var diff {dv:.3g}; "
                      f"without zeros: {d2:.3g}"}


U.reexport(globals())
