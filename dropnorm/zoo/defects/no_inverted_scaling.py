"""Kept units are not rescaled by 1/(1-p), as the numpy dropout of source document 002
returns x * mask. Violates DO-TRAIN-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-01", "summary": "kept units are not rescaled by 1/(1-p)",
          "source": "ledger L-002-14"}


class _Unscaled:
    def scale(self, x):
        return torch.ones((), dtype=x.dtype, device=x.device)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_Unscaled)
