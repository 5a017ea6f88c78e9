"""The drop threshold uses p rounded to 0 below 0.01 and to 1 above 0.99 (an optimisation that
skips the draw for 'negligible' rates): p = 0.005 drops nothing, p = 0.995 drops everything;
the scale stays 1/(1-p). Violates DO-TRAIN-02."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-02", "summary": "p < 0.01 drops nothing and p > 0.99 drops everything",
          "source": "probe: wrong rate only for p < 0.02 or p > 0.98 (issue 14)"}


class _RoundedEnds:
    def draw_keep(self, shape, x):
        p = 0.0 if self.p < 0.01 else 1.0 if self.p > 0.99 else self.p
        return torch.rand(shape, device=x.device) >= p


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_RoundedEnds)
