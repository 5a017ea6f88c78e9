"""Eval under torch.no_grad() or torch.inference_mode() takes a 'fast inference' path that folds the
normalisation into x * a - rm * a (a = 1/sqrt(rv + eps)), while the differentiable path computes
(x - rm)/sqrt(rv + eps): the served predictions differ in the last bits from the validated ones. Within
BN-EVAL-01's tolerance, so only the bitwise equality of the contexts sees it. Violates BN-GRAD-05."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-GRAD-05", "summary": "eval without gradients folds the normalisation (another rounding)",
          "source": "plausible: inference-only fast paths that fold BatchNorm (cf. docs/findings/"
                    "torch-batchnorm-folded-normalization-offset.md)"}


class _FoldedWithoutGrad:
    def normalize(self, xw, mean, var):
        if torch.is_grad_enabled() or self.uses_batch_stats():
            return super().normalize(xw, mean, var)
        a = 1.0 / torch.sqrt(self.per_channel(var, xw) + self.eps)
        return xw * a - self.per_channel(mean, xw) * a


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_FoldedWithoutGrad)
