"""Helpers shared by several defects: the mistakes of hand-written kernels."""
import torch
from torch.autograd.function import once_differentiable


def storage_as_contiguous(x):
    """x's memory read as if x were contiguous: what a kernel indexing raw storage
    with contiguous strides sees. Equal to x only when x is contiguous."""
    strides, step = [], 1
    for size in reversed(x.shape):
        strides.insert(0, step)
        step *= size
    return torch.as_strided(x, x.shape, strides, x.storage_offset())


class Normalize(torch.autograd.Function):
    """xhat = (x - mean)/sqrt(var + eps) with a hand-written backward.

    mean and var are passed detached: with batch_formula the backward adds their
    dependence on x analytically (IS15 section 3),
        dx = invstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),
    otherwise it is the diagonal g * invstd of fixed statistics. The backward is
    correct to first order but @once_differentiable, as many custom kernels are.
    """

    @staticmethod
    def forward(ctx, x, mean, var, eps, batch_formula):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        invstd = torch.rsqrt(var.view(shape) + eps)
        xhat = (x - mean.view(shape)) * invstd
        ctx.save_for_backward(xhat, invstd)
        ctx.batch_formula = batch_formula
        return xhat

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        xhat, invstd = ctx.saved_tensors
        if not ctx.batch_formula:
            return g * invstd, None, None, None, None
        axes = [0] + list(range(2, g.dim()))
        centred = g - g.mean(dim=axes, keepdim=True) - xhat * (g * xhat).mean(dim=axes, keepdim=True)
        return invstd * centred, None, None, None, None
