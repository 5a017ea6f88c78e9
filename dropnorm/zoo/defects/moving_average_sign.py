"""Defect (ledger L-000-18): the running mean updated as (1-m) * running - m * batch mean,
the sign error of source document 000's moving average. Violates BN-TRAIN-02."""
import torch
import torch.nn.functional as F
from torch import nn

from torch.nn import Dropout, Dropout2d  # noqa: F401  (correct, from torch)


class _SignBN:
    def forward(self, x):
        if not (self.training and self.track_running_stats):
            return super().forward(x)
        axes = [0] + list(range(2, x.dim()))
        n = x.numel() // x.shape[1]
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            mean = x.mean(dim=axes).to(self.running_mean.dtype)
            var = x.var(dim=axes, unbiased=True).to(self.running_var.dtype) if n > 1 else None
            self.running_mean.mul_(1 - m).sub_(m * mean)  # the defect: minus instead of plus
            if var is not None:
                self.running_var.mul_(1 - m).add_(m * var)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class BatchNorm1d(_SignBN, nn.BatchNorm1d):
    pass


class BatchNorm2d(_SignBN, nn.BatchNorm2d):
    pass


class BatchNorm3d(_SignBN, nn.BatchNorm3d):
    pass
