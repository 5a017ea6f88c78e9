"""affine=False normalises through a hand-written backward that is right to first order and not marked
@once_differentiable: it reads xhat and invstd saved in the forward, which autograd treats as constants,
so double backward silently loses d(dx)/dx instead of raising (as hand-written "memory-efficient" BN
Functions of custom extensions do). affine=True is unchanged. Violates BN-GRAD-04 (gradgradcheck, affine=False)."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._kernels import Normalize

DEFECT = {"clause": "BN-GRAD-04", "summary": "double backward wrong for affine=False (saved xhat treated as constant)",
          "source": "blind probe benchmarks/blind_probes/round2/bn1d_affine_false_gradgrad.py (issue 22)"}


class _SilentNormalize(torch.autograd.Function):
    forward = staticmethod(Normalize.forward)

    @staticmethod
    def backward(ctx, g):  # differentiable in g only: xhat, invstd are saved constants
        xhat, invstd = ctx.saved_tensors
        axes = [0] + list(range(2, g.dim()))
        dx = g if not ctx.batch_formula else g - g.mean(axes, True) - xhat * (g * xhat).mean(axes, True)
        return invstd * dx, None, None, None, None


class _SilentSecondOrder:
    def normalize(self, xw, mean, var):
        if self.affine:
            return super().normalize(xw, mean, var)
        return _SilentNormalize.apply(xw, mean.detach(), var.detach(), self.eps, self.uses_batch_stats())


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_SilentSecondOrder)
