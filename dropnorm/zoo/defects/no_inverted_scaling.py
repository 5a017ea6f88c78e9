"""Defect (ledger L-002-14): dropout that zeroes with probability p but never rescales by
1/(1-p), as the numpy dropout of source document 002 does. Violates DO-TRAIN-01."""
import torch
from torch import nn

from torch.nn import BatchNorm1d, BatchNorm2d, BatchNorm3d, Dropout2d  # noqa: F401  (correct, from torch)


class Dropout(nn.Dropout):
    def forward(self, x):
        if not self.training:
            return x
        return x * torch.empty_like(x).bernoulli_(1 - self.p)
