"""AlphaDropout's hand-written backward returns plain dropout's dy * z / (1-p) instead of dy * z * a
(the forward is right). Violates AD-GRAD-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import AlphaDropout as _AlphaDropout

DEFECT = {"clause": "AD-GRAD-01", "summary": "the backward uses 1/(1-p), not a",
          "source": "plausible: a backward copied from plain dropout"}


class _Alpha(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keep, y, p):
        ctx.save_for_backward(keep)
        ctx.p = p
        return y.clone()

    @staticmethod
    def backward(ctx, dy):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, dy / (1.0 - ctx.p), torch.zeros((), dtype=dy.dtype, device=dy.device)), None, None, None


class AlphaDropout(_AlphaDropout):
    def apply(self, x, keep, a):
        return _Alpha.apply(x, keep, super().apply(x, keep, a).detach(), self.p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
