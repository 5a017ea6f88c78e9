"""AlphaDropout through a hand-written autograd Function whose backward (dy * a * z) is right to first
order but marked @once_differentiable: double backward raises (blind probe
benchmarks/blind_probes/round3/alphadropout_once_differentiable.py escaped: no clause asked it of the alpha
kinds). Violates AD-GRAD-01 (gradgradcheck)."""
import torch
from torch.autograd.function import once_differentiable

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects import _dropout_family as fam

DEFECT = {"clause": "AD-GRAD-01", "summary": "no double backward for AlphaDropout (custom backward is once_differentiable)",
          "source": "blind probe round 3 (issue 22): alphadropout_once_differentiable"}


class _Affine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keep, a, b, dropped):
        ctx.save_for_backward(keep, a)
        return torch.where(keep, x * a + b, dropped)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        keep, a = ctx.saved_tensors
        return torch.where(keep, dy * a, torch.zeros((), dtype=dy.dtype)), None, None, None, None


class AlphaDropout(fam.AlphaDropout):
    def apply(self, x, keep, a):
        _, b = fam.alpha_constants(self.p)
        t = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
        return _Affine.apply(x, keep, t(a), t(b), t(a * fam.ALPHA_PRIME + b))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
