"""affine=False still creates weight and bias parameters (ones and zeros); the flag only
skips the affine step, so optimisers and state_dict see parameters nobody uses.
Violates BN-AFFINE-01."""
import torch
from torch import nn

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-AFFINE-01", "summary": "affine=False still has weight and bias parameters",
          "source": "plausible: parameters allocated unconditionally"}


class _ParametersAnyway:
    def __init__(self, num_features, *args, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        if not self.affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_ParametersAnyway)
