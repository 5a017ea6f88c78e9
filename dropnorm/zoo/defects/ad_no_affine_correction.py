"""AlphaDropout sets dropped units to alpha' and keeps the others as they are, without the affine
correction a (.) + b that restores mean 0 and variance 1. Violates AD-TRAIN-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import ALPHA_PRIME, AlphaDropout as _AlphaDropout

DEFECT = {"clause": "AD-TRAIN-01", "summary": "dropped units set to alpha' without the affine a, b",
          "source": "plausible: the first step of [SNN17]'s alpha dropout without the second"}


class AlphaDropout(_AlphaDropout):
    def apply(self, x, keep, a):
        return torch.where(keep, x, torch.tensor(ALPHA_PRIME, dtype=x.dtype, device=x.device))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
