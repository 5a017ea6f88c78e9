"""The 1/(1-p) scale is applied through .data, out of autograd's sight: the forward
is right, the gradient is dy * mask without the scale. Violates DO-GRAD-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-GRAD-01", "summary": "the backward misses the 1/(1-p) scale (scaled via .data)",
          "source": "plausible: the legacy .data idiom hides an operation from autograd"}


class ScaleViaData:
    def apply(self, x, keep, scale):
        y = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
        y.data.mul_(scale)
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=ScaleViaData)
