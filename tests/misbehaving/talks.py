"""Dropout is correct but prints to stdout and stderr and warns on every call; Dropout2d
returns a numpy array; BatchNorm drops the batch dimension of its output in eval."""
import sys
import warnings

from torch import nn


class Dropout(nn.Dropout):
    def forward(self, x):
        print("CHATTY-STDOUT <script>alert(1)</script>")
        print("CHATTY-STDERR", file=sys.stderr)
        warnings.warn("CHATTY-WARNING", RuntimeWarning)
        return super().forward(x)


class Dropout2d(nn.Dropout2d):
    def forward(self, x):
        return super().forward(x).detach().cpu().numpy()


class _DropsBatch:
    def forward(self, x):
        y = super().forward(x)
        return y if self.training else y[0]


class BatchNorm1d(_DropsBatch, nn.BatchNorm1d):
    pass


class BatchNorm2d(_DropsBatch, nn.BatchNorm2d):
    pass


class BatchNorm3d(_DropsBatch, nn.BatchNorm3d):
    pass
