"""Batch statistics from torch.var_mean (a single-pass Welford-style reduction on CPU)
instead of scratch's explicit two-pass mean and mean of squared deviations: another
summation order with the same accuracy class."""
import torch

from dropnorm.zoo.build import layers

VARIANT = {"layers": ["batchnorm"], "summary": "batch statistics from torch.var_mean (Welford-style)"}


class _VarMean:
    def batch_stats(self, xw):
        var, mean = torch.var_mean(xw, dim=self.axes(xw), unbiased=False)
        return mean, var


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_VarMean)
