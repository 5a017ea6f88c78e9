"""The result is always written back into the input to save memory, also with
inplace=False (the returned tensor is still the new one). Violates DO-INPLACE-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-INPLACE-01", "summary": "inplace=False still overwrites the input",
          "source": "plausible: an unconditional in-place write meant as a memory optimisation"}


class _AlwaysWritesBack:
    def output(self, x, y):
        with torch.no_grad():
            x.copy_(y)
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_AlwaysWritesBack)
