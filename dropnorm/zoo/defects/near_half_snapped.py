"""A fast path for p = 0.5 (one random bit per element) is taken whenever |p - 0.5| < 0.05, a
tolerance on the comparison: for 0.45 < p < 0.55 elements are dropped with probability 0.5.
The scale stays 1/(1-p). Violates DO-TRAIN-02."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-02", "summary": "p within 0.05 of 0.5 is drawn as 0.5",
          "source": "probe: wrong rate only for 0.45 < p < 0.55 (issue 14)"}


class _SnappedHalf:
    def draw_keep(self, shape, x):
        if abs(self.p - 0.5) < 0.05:
            return torch.randint(0, 2, shape, device=x.device) == 1
        return super().draw_keep(shape, x)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_SnappedHalf)
