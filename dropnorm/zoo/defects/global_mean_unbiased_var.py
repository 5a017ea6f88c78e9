"""Defect (ledger L-002-16, L-002-17): training batch norm that takes one mean over the whole
array and normalises with the n-1 variance, as the numpy batch_normalization of source
document 002 does. Running statistics are torch's (correct). Violates BN-TRAIN-01."""
import torch
from torch import nn

from torch.nn import Dropout, Dropout2d  # noqa: F401  (correct, from torch)


class _GlobalStatsBN:
    def forward(self, x):
        if not (self.training or not self.track_running_stats):
            return super().forward(x)
        with torch.no_grad():
            super().forward(x)  # torch's own running-statistics update and input checks
        view = (1, -1) + (1,) * (x.dim() - 2)
        y = (x - x.mean()) / torch.sqrt(x.var(unbiased=True) + self.eps)
        if self.affine:
            y = y * self.weight.view(view) + self.bias.view(view)
        return y


class BatchNorm1d(_GlobalStatsBN, nn.BatchNorm1d):
    pass


class BatchNorm2d(_GlobalStatsBN, nn.BatchNorm2d):
    pass


class BatchNorm3d(_GlobalStatsBN, nn.BatchNorm3d):
    pass
