"""Each layer fails in its own way, so one audit shows each status on its own clause:
Dropout raises on valid input; Dropout2d kills its process with SIGSEGV in training;
BatchNorm ends its process with os._exit in eval but trains correctly."""
import ctypes
import os

from torch import nn


class Dropout(nn.Dropout):
    def forward(self, x):
        raise NotImplementedError("dropout kernel <b>not built</b> for this platform")


class Dropout2d(nn.Dropout2d):
    def forward(self, x):
        if self.training and 0 < self.p < 1:
            ctypes.string_at(0)  # reads address 0
        return super().forward(x)


class _ExitsInEval:
    def forward(self, x):
        if not self.training:
            os._exit(3)
        return super().forward(x)


class BatchNorm1d(_ExitsInEval, nn.BatchNorm1d):
    pass


class BatchNorm2d(_ExitsInEval, nn.BatchNorm2d):
    pass


class BatchNorm3d(_ExitsInEval, nn.BatchNorm3d):
    pass
