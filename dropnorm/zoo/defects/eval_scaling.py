"""Defect (ledger L-004-08): inverted dropout in training, and on top of it the weight-scaling
rule of non-inverted dropout at inference, y = (1-p) x, as source document 004 describes.
Violates DO-EVAL-01."""
from torch import nn

from torch.nn import BatchNorm1d, BatchNorm2d, BatchNorm3d, Dropout2d  # noqa: F401  (correct, from torch)


class Dropout(nn.Dropout):
    def forward(self, x):
        if not self.training:
            return x * (1 - self.p)
        return super().forward(x)
