"""A moving average of the batch standard deviations kept in running_var, as source
document 000 describes, while eval still divides by sqrt(running_var + eps).
Violates BN-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-03", "summary": "running_var averages the standard deviation, not the variance",
          "source": "ledger L-000-17"}


class _AveragesStd:
    @classmethod
    def running_var_sample(cls, var, shape):
        return torch.sqrt(super().running_var_sample(var, shape))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_AveragesStd)
