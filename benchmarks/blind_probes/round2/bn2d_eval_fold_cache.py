"""Blind probe: BatchNorm2d caching its folded eval-mode scale/shift, keyed by buffer addresses.

Defect: in eval mode (with running statistics) the layer folds scale = weight / sqrt(running_var + eps)
and shift = bias - running_mean * scale once and caches them, keyed by the data pointers (and dtype)
of running_mean, running_var, weight and bias, and invalidated by train()/eval() and by every training
forward. Writing the statistics or parameters in place while in eval mode -- load_state_dict (which
copies into the existing tensors), `with torch.no_grad(): bn.running_mean.copy_(...)`, an optimizer
step -- keeps the same pointers, so the next eval forward still uses the stale fold. Fresh layers,
.to(dtype), and any sequence with a mode switch or a training call in between are right.

Inspired by: inference engines and "fast eval" BatchNorm wrappers (e.g. cached conv-bn fusion,
TensorRT-style weight caches) that key cached derived weights on tensor identity/data_ptr, which
in-place updates do not change.

Region: BatchNorm2d, eval mode, an eval forward, then an in-place change of running stats / weight /
bias with no mode switch, then another eval forward.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class _FoldCache:
    _fold = None

    def train(self, mode=True):
        self._fold = None
        return super().train(mode)

    def _key(self):
        ts = (self.running_mean, self.running_var, self.weight, self.bias)
        return tuple((t.data_ptr(), t.dtype) if t is not None else None for t in ts)

    def forward(self, x):
        if self.training or self.running_mean is None or x.dim() != 4:
            self._fold = None
            return super().forward(x)
        self._check_input_dim(x)
        if x.shape[1] != self.num_features:
            return super().forward(x)
        key = self._key()
        if self._fold is None or self._fold[0] != key:
            with torch.no_grad():
                cdt = U.compute_dtype(x)
                inv = torch.rsqrt(self.running_var.to(cdt) + self.eps)
                if self.affine:
                    scale = self.weight.detach().to(cdt) * inv
                    shift = self.bias.detach().to(cdt) - self.running_mean.to(cdt) * scale
                else:
                    scale, shift = inv, -self.running_mean.to(cdt) * inv
            self._fold = (key, scale, shift)
        _, scale, shift = self._fold
        if self.affine and torch.is_grad_enabled() and (self.weight.requires_grad or x.requires_grad):
            return super().forward(x)  # keep autograd exact: gradients go through torch
        cdt = scale.dtype
        return (x.to(cdt) * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)).to(x.dtype)


class BatchNorm2d(_FoldCache, torch.nn.BatchNorm2d):
    pass


# The relatives run the same forward (a library ships one implementation): LazyBatchNorm2d becomes
# this BatchNorm2d, SyncBatchNorm (one process) uses the same eval path, so the only departure from
# torch beyond rounding is the stale cache.
class LazyBatchNorm2d(_FoldCache, torch.nn.LazyBatchNorm2d):
    cls_to_become = BatchNorm2d


class SyncBatchNorm(_FoldCache, torch.nn.SyncBatchNorm):
    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        out = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
        for m in out.modules():
            if type(m) is torch.nn.SyncBatchNorm:
                m.__class__ = cls
        return out


def confirm():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    p, t = BatchNorm2d(3).eval(), torch.nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        d0 = U.max_abs(p(x), t(x))
        sd = {"weight": torch.ones(3), "bias": torch.zeros(3), "running_mean": torch.full((3,), 5.0),
              "running_var": torch.full((3,), 4.0), "num_batches_tracked": torch.tensor(3)}
        p.load_state_dict(sd)
        t.load_state_dict(sd)
        d1 = U.max_abs(p(x), t(x))
    return {"observable": d1 > 1e-3,
            "detail": f"eval forward before loading: max |y - torch| {d0:.3g}; eval forward after load_state_dict "
                      f"(running_mean 0 -> 5, var 1 -> 4) without a mode switch: {d1:.3g}"}


U.reexport(globals())
