"""Blind probe: BatchNorm2d whose weight gradient uses x-hat normalised with the unbiased variance.

Defect: in training the backward recomputes x-hat for the weight gradient from the unbiased batch
variance (the one that goes into running_var) instead of the biased variance used in the forward:
grad_weight = sum(g * (x - mean) / sqrt(var_unbiased + eps)), smaller than torch's by about
sqrt((n - 1) / n) per channel (n = N*H*W). Outputs, input gradient and bias gradient are torch's.
Relative error 1/(2n): 12 % at n = 4, 0.05 % at n = 1000.

Inspired by: backward kernels that recompute invstd instead of using the saved one
(ATen saves save_invstd from the forward, aten/src/ATen/native/Normalization.cpp
batch_norm_cpu_transform_input / batch_norm_backward_cpu_template), mixing the two variances that a
BN kernel handles (biased for normalising, unbiased for the running update).

Region: BatchNorm2d, training (batch statistics), affine=True, gradient with respect to weight;
visible for small per-channel counts.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        y = super().forward(x)
        if (self.weight is not None and self.weight.requires_grad and torch.is_grad_enabled()
                and U.uses_batch_stats(self) and x.dim() == 4 and x.numel() // x.shape[1] > 1):
            cdt = U.compute_dtype(x)
            xc = x.detach().to(cdt)
            dims = U.reduce_dims(xc)
            n = xc.numel() // xc.shape[1]
            shape = [1, xc.shape[1], 1, 1]
            mean = xc.mean(dims, keepdim=True)
            var = ((xc - mean) ** 2).mean(dims, keepdim=True)
            xhat = (xc - mean) * torch.rsqrt(var + self.eps)
            xhat_u = (xc - mean) * torch.rsqrt(var * n / (n - 1) + self.eps)
            w = self.weight
            # adds zero to the output, changes d/dweight only
            y = y + ((w - w.detach()).to(cdt).view(shape) * (xhat_u - xhat)).to(y.dtype)
        return y


def _grads(m, x):
    x = x.clone().requires_grad_(True)
    y = m(x)
    y.backward(torch.linspace(-1, 2, y.numel()).view(y.shape) ** 2)
    return y.detach(), x.grad, m.weight.grad, m.bias.grad


def confirm():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 2, 1)  # n = 4 per channel
    p, t = BatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    yp, xp, wp, bp = _grads(p, x)
    yt, xt, wt, bt = _grads(t, x)
    rel = float(((wp - wt).abs() / wt.abs()).max())
    return {"observable": U.max_abs(wp, wt) > 1e-3 and U.max_abs(yp, yt) == 0,
            "detail": f"(2,3,2,1) training: weight grad probe {[round(v, 4) for v in wp.tolist()]} vs torch "
                      f"{[round(v, 4) for v in wt.tolist()]} (max rel {rel:.3f}); output diff {U.max_abs(yp, yt):.2g}, "
                      f"input grad diff {U.max_abs(xp, xt):.2g}, bias grad diff {U.max_abs(bp, bt):.2g}"}


U.reexport(globals())
