"""Blind probe: BatchNorm1d(affine=False) with a custom backward whose double backward is wrong.

Defect: for affine=False with batch statistics in float32/float64, the forward is a custom
torch.autograd.Function (torch's own kernel inside, running statistics updated as torch does) whose
backward implements dx = invstd (g - mean(g) - xhat mean(g xhat)) from xhat and invstd saved in the
forward. The first-order gradient is exact. But the saved xhat and invstd are constants to autograd,
so differentiating the backward (double backward, gradgradcheck, Hessian-vector products) only sees
the dependence on g: d(dx)/dx is missing entirely. affine=True goes through torch unchanged.

Inspired by: hand-written fused BatchNorm backward Functions (apex, custom CUDA extensions, many
"memory-efficient BN" implementations) that work for training but are not marked
@once_differentiable, so double backward silently returns wrong values instead of raising.

Region: BatchNorm1d, affine=False, batch statistics, float32/float64, second-order gradients
(gradgradcheck, grad of grad w.r.t. the input).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class _BNNoAffine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rm, rv, factor, eps):
        dims = U.reduce_dims(x)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        y = F.batch_norm(x, rm, rv, None, None, True, factor, eps)
        mean = x.mean(dims)
        invstd = torch.rsqrt(((x - mean.view(shape)) ** 2).mean(dims) + eps)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, invstd)
        return y

    @staticmethod
    def backward(ctx, g):
        xhat, invstd = ctx.saved_tensors
        dims = U.reduce_dims(g)
        shape = [1, g.shape[1]] + [1] * (g.dim() - 2)
        gm = g.mean(dims, keepdim=True)
        gx = (g * xhat).mean(dims, keepdim=True)
        dx = invstd.view(shape) * (g - gm - xhat * gx)
        return dx, None, None, None, None


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        if self.affine or not U.uses_batch_stats(self) or x.dtype not in (torch.float32, torch.float64) \
                or x.dim() not in (2, 3) or x.shape[1] != self.num_features or x.numel() // x.shape[1] <= 1:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        track = self.training and self.track_running_stats and self.running_mean is not None
        if track:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        rm = self.running_mean if track else None
        rv = self.running_var if track else None
        return _BNNoAffine.apply(x, rm, rv, factor, self.eps)


def _grads(cls):
    torch.manual_seed(0)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)  # as gradgradcheck does
    m = cls(3, affine=False).double().train()
    y = m(x)
    (dx,) = torch.autograd.grad(y, x, g, create_graph=True)
    (ddx,) = torch.autograd.grad((dx ** 2).sum(), x, allow_unused=True)
    return dx.detach(), (ddx if ddx is not None else torch.zeros_like(x))


def confirm():
    (pdx, pdd), (tdx, tdd) = _grads(BatchNorm1d), _grads(torch.nn.BatchNorm1d)
    d1 = float((pdx - tdx).abs().max())
    d2 = float((pdd - tdd).abs().max())
    return {"observable": d2 > 1e-6,
            "detail": f"float64 (6,3), affine=False: first-order dx max diff {d1:.3g}; grad of sum(dx^2) w.r.t. x "
                      f"max diff {d2:.3g} (torch's max |value| {float(tdd.abs().max()):.3g})"}


U.reexport(globals())
