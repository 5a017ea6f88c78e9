"""The drop threshold is off by 0.02: elements are dropped with probability p + 0.02
(the scale stays 1/(1-p)). Violates DO-TRAIN-02."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-02", "summary": "elements are dropped with probability p + 0.02",
          "source": "plausible: an additive offset in the drop threshold"}


class _OffThreshold:
    def draw_keep(self, shape, x):
        return torch.rand(shape, device=x.device) >= min(self.p + 0.02, 1.0)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_OffThreshold)
