"""torch.nn's layers, but BatchNorm returns inf, -inf and NaN in its output, input gradient and
running statistics. Expected: not conformant, and a valid report.json (non-finite values written
as the schema's strings)."""
import torch
import torch.nn as nn

Dropout, Dropout2d = nn.Dropout, nn.Dropout2d


class _NonFinite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        out = y.clone()
        flat = out.view(-1)
        for i, v in enumerate((float("inf"), float("-inf"), float("nan"))):
            if i < flat.numel():
                flat[i] = v
        return out

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        if g.numel():
            g.view(-1)[0] = float("nan")
        return g


class _Poisoned:
    def forward(self, x):
        y = super().forward(x)
        if self.training and self.running_var is not None:
            with torch.no_grad():
                self.running_var[0] = float("inf")
                self.running_mean[0] = float("nan")
        return _NonFinite.apply(y)


class BatchNorm1d(_Poisoned, nn.BatchNorm1d):
    pass


class BatchNorm2d(_Poisoned, nn.BatchNorm2d):
    pass


class BatchNorm3d(_Poisoned, nn.BatchNorm3d):
    pass
