"""Correct variant: BatchNorm1d/2d/3d computing everything in float64 internally.

Not a defect: the input, parameters and running statistics are converted to float64, torch's kernel
runs in float64 (batch statistics, normalisation, running update), and the output is cast back to the
input's dtype and the statistics back into their buffers. Results agree with torch within the
rounding of the final cast (float64 is at least as accurate); gradients flow through the casts.

Inspired by: "compute BN in higher precision" wrappers (keep_batchnorm_fp32, float64 reference paths
in numerics-sensitive code).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class _F64Mixin:
    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = True if self.training else (self.running_mean is None and self.running_var is None)
        pass_stats = (not self.training or self.track_running_stats) and self.running_mean is not None
        rm = self.running_mean.double() if pass_stats else None
        rv = self.running_var.double() if pass_stats else None
        w = self.weight.double() if self.weight is not None else None
        b = self.bias.double() if self.bias is not None else None
        y = F.batch_norm(input.double(), rm, rv, w, b, bn_training, factor, self.eps)
        if pass_stats and bn_training and rm is not self.running_mean:  # float64 layers: updated in place
            with torch.no_grad():
                self.running_mean.copy_(rm)
                self.running_var.copy_(rv)
        return y.to(input.dtype)


class BatchNorm1d(_F64Mixin, torch.nn.BatchNorm1d):
    pass


class BatchNorm2d(_F64Mixin, torch.nn.BatchNorm2d):
    pass


class BatchNorm3d(_F64Mixin, torch.nn.BatchNorm3d):
    pass


# The module's relatives are this implementation too (not torch's re-exported classes): LazyBatchNormNd
# becomes this file's BatchNormNd and runs its forward from the first call; SyncBatchNorm (one process)
# runs the same forward, and convert_sync_batchnorm yields this file's SyncBatchNorm.
class LazyBatchNorm1d(_F64Mixin, torch.nn.LazyBatchNorm1d):
    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_F64Mixin, torch.nn.LazyBatchNorm2d):
    cls_to_become = BatchNorm2d


class LazyBatchNorm3d(_F64Mixin, torch.nn.LazyBatchNorm3d):
    cls_to_become = BatchNorm3d


class SyncBatchNorm(_F64Mixin, torch.nn.SyncBatchNorm):
    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        out = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
        for m in out.modules():
            if type(m) is torch.nn.SyncBatchNorm:
                m.__class__ = cls
        return out


def confirm():
    torch.manual_seed(0)
    worst = {}
    for dt, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12), (torch.float16, 2e-3)):
        x = (torch.randn(16, 3, 5, 5) * 3 + 2).to(dt)
        p, t = BatchNorm2d(3).to(dt if dt == torch.float64 else torch.float32), torch.nn.BatchNorm2d(3).to(
            dt if dt == torch.float64 else torch.float32)
        d = [U.max_abs(p(x), t(x)), float((p.running_var - t.running_var).abs().max())]
        p.eval(), t.eval()
        d.append(U.max_abs(p(x), t(x)))
        worst[str(dt)] = (max(d), tol)
    disagree = any(v > tol for v, tol in worst.values())
    return {"observable": disagree,
            "detail": "max |probe - torch| over train output, running_var, eval output: " +
                      ", ".join(f"{k} {v:.2g} (tol {tol:g})" for k, (v, tol) in worst.items())}


U.reexport(globals())
