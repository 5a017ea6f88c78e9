"""AlphaDropout computes a and b literally at p = 1: a = 1/sqrt(0) = inf, so every dropped unit is
inf * alpha' + inf * 0 ... = NaN instead of the limit 0. Violates AD-EDGE-01."""
import math

import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import ALPHA_PRIME, AlphaDropout as _AlphaDropout

DEFECT = {"clause": "AD-EDGE-01", "summary": "p = 1 gives NaN (inf - inf) instead of zeros",
          "source": "plausible: no special case for p = 1 (ATen has one: input * 0)"}


class AlphaDropout(_AlphaDropout):
    def dropped(self, x):
        if self.p < 1.0:
            return super().dropped(x)
        a = math.inf  # 1 / sqrt((1 + alpha'^2 p) (1 - p)) at p = 1
        d = a * ALPHA_PRIME + (-a * ALPHA_PRIME * self.p)  # inf - inf
        return torch.full_like(x, d)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
