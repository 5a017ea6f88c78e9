"""Dropout in training blocks inside native code *holding the GIL* (libc sleep through
ctypes.PyDLL), which no Python-level timeout in its process can interrupt; Dropout2d raises
TypeError instead of ValueError for a bad p; BatchNorm switches torch's default dtype to
float64 in training and leaves it so."""
import ctypes

import torch
from torch import nn


class Dropout(nn.Dropout):
    def forward(self, x):
        if self.training and 0 < self.p < 1:
            ctypes.PyDLL(None).sleep(3600)
        return super().forward(x)


class Dropout2d(nn.Dropout2d):
    def __init__(self, p=0.5, inplace=False):
        if not 0 <= p <= 1:
            raise TypeError(f"bad p {p}")
        super().__init__(p, inplace)


class _Tampers:
    def forward(self, x):
        if self.training:
            torch.set_default_dtype(torch.float64)
        return super().forward(x)


class BatchNorm1d(_Tampers, nn.BatchNorm1d):
    pass


class BatchNorm2d(_Tampers, nn.BatchNorm2d):
    pass


class BatchNorm3d(_Tampers, nn.BatchNorm3d):
    pass
