"""eps is added to the standard deviation, (x - mu)/(sqrt(var) + eps), instead of to
the variance under the root. Violates BN-TRAIN-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "eps added outside the square root",
          "source": "https://github.com/Tencent/ncnn/pull/311 (review: eps inside sqrt); also pjreddie/darknet#17"}


class _EpsOnStd:
    def normalize(self, xw, mean, var):
        return (xw - self.per_channel(mean, xw)) / (torch.sqrt(self.per_channel(var, xw)) + self.eps)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_EpsOnStd)
