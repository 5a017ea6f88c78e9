"""Every dtype computed in float64 (statistics, normalisation, running update) and
the output rounded once to the input's dtype: more accurate than required, so the
tolerances must not demand a particular float32 rounding."""
import torch

from dropnorm.zoo.build import layers

VARIANT = {"layers": ["batchnorm"], "summary": "statistics and normalisation in float64 for every input dtype"}


class _Float64:
    @staticmethod
    def work_dtype(x):
        return torch.float64


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_Float64)
