"""Blind probe: BatchNorm2d updating running_var with the biased variance when N == 1.

Defect: a batch of one sample (N = 1, H*W > 1) is routed to an instance-norm style fast path that
returns the biased variance, and the running variance is updated with it instead of the unbiased
batch variance (factor HW/(HW-1) missing). Output, running mean and num_batches_tracked are right;
N >= 2 goes through torch.

Inspired by: batch-size-1 special cases (inference-style or instance-norm kernels reused for N=1 in
training, e.g. in mobile/edge runtimes and some fused kernels) that skip the Bessel correction the
general path applies.

Region: BatchNorm2d, training, tracked, N = 1 with H*W > 1; visible in running_var (relative error
1/(HW): 1/4 for 2x2, 1/64 for 8x8).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        if x.dim() == 4 and x.shape[0] == 1 and self.training and self.track_running_stats \
                and self.running_mean is not None and x.shape[1] == self.num_features and x[0, 0].numel() > 1:
            self.num_batches_tracked.add_(1)
            f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            # torch's kernel on copies of the statistics (so that the tensors autograd saved are never
            # written again), then the N = 1 path's own running update with the biased variance
            rm_new = self.running_mean.clone()
            y = F.batch_norm(x, rm_new, self.running_var.clone(), self.weight, self.bias, True, f, self.eps)
            with torch.no_grad():
                cdt = U.compute_dtype(x)
                xd = x.detach().to(cdt)
                var_b = xd.var(dim=(0, 2, 3), unbiased=False)
                rv = self.running_var
                self.running_mean.copy_(rm_new)  # torch's own running-mean update
                rv.copy_((f * var_b + (1 - f) * rv.to(cdt)).to(rv.dtype))
            return y
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 2, 2)
    p, t = BatchNorm2d(3, momentum=1.0).train(), torch.nn.BatchNorm2d(3, momentum=1.0).train()
    dy = U.max_abs(p(x), t(x))
    rel = float(((p.running_var - t.running_var) / t.running_var).abs().max())
    return {"observable": rel > 1e-3,
            "detail": f"(1,3,2,2), momentum=1: running_var relative difference {rel:.3g} (expected 1/HW = 0.25); output diff {dy:.3g}"}


U.reexport(globals())
