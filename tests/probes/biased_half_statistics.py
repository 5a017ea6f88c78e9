"""Two defects in one BatchNorm: the running variance averages the biased batch variance (no
n/(n-1)), and the batch statistics are computed in float16. Expected: both BN-TRAIN-03 (biased
running variance) and the clause of the half-precision statistics are named."""
import torch

from dropnorm.zoo.build import layers


class _BiasedHalf:
    @staticmethod
    def running_var_sample(var, shape):
        return var

    def batch_stats(self, xw):
        mean, var = super().batch_stats(xw.to(torch.float16))
        return mean.to(xw.dtype), var.to(xw.dtype)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_BiasedHalf)
