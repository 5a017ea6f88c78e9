"""p read as the keep probability when drawing the mask (units are kept with
probability p), while the scale is still 1/(1-p): the drop/keep confusion of
cs231n-style code. Invisible at p = 0.5. Violates DO-TRAIN-02."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-02", "summary": "units are kept with probability p instead of 1-p",
          "source": "https://github.com/v-iashin/CS231n/pull/8 (also lightaime/cs231n#1; ledger L-003-17)"}


class KeepWithProbabilityP:
    def draw_keep(self, shape, x):
        return torch.rand(shape, device=x.device) < self.p


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=KeepWithProbabilityP)
