"""Dropout selects with torch.where between the scaled input and 0, with the keep mask drawn in the logical
(contiguous) order: the result takes the mask's contiguous layout, so a channels_last input comes back
contiguous (the values are right). Violates DO-FORMAT-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-FORMAT-01", "summary": "a channels_last input gives a contiguous output (the mask's layout)",
          "source": "plausible: torch.where(mask, x * scale, 0) with a mask from torch.rand(x.shape) (the suite's own "
                    "from-scratch Dropout did this before issue 24)"}


class _MaskLayout:
    def apply(self, x, keep, scale):
        return torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_MaskLayout)
