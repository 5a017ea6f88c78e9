"""Dropout through a hand-written autograd Function whose backward (dy * mask / (1-p)) is right to
first order but marked @once_differentiable: double backward (gradient penalties, Hessian-vector
products) raises. Violates DO-GRAD-02."""
import torch
from torch.autograd.function import once_differentiable

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-GRAD-02", "summary": "no double backward (custom backward is once_differentiable)",
          "source": "plausible: a fused dropout kernel with a first-order backward, as pytorch/pytorch#4422 for batch norm"}


class _MaskScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep, scale)
        return torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        keep, scale = ctx.saved_tensors
        return torch.where(keep, dy * scale, torch.zeros((), dtype=dy.dtype, device=dy.device)), None, None


class FirstOrderOnly:
    def apply(self, x, keep, scale):
        return _MaskScale.apply(x, keep, scale)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=FirstOrderOnly)
