"""The eval path divides by sqrt(running_var) without eps (ncnn's BatchNorm layer had
no eps and relied on the converter folding it in). Violates BN-EVAL-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-EVAL-01", "summary": "eval mode divides by sqrt(running_var), without eps",
          "source": "https://github.com/Tencent/ncnn/issues/303"}


class _EvalNoEps:
    def normalize(self, xw, mean, var):
        if self.uses_batch_stats():
            return super().normalize(xw, mean, var)
        return (xw - self.per_channel(mean, xw)) / torch.sqrt(self.per_channel(var, xw))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_EvalNoEps)
