"""Blind probe: Dropout(p=1) that scales by 1/(1-p) = inf and so returns NaN.

Defect: p == 1 is not special-cased: the mask is all zeros and the kernel multiplies by
mask * (1 / (1 - p)) = 0 * inf, so every output element is NaN instead of (signed) zero. Any p < 1
goes through torch unchanged. Inplace layers write the NaNs into the input.

Inspired by: ATen's explicit special case in aten/src/ATen/native/Dropout.cpp, _dropout_impl:
`if (p == 1) { return multiply<inplace>(input, at::zeros({}, input.options())); }`, which
implementations that compute `scale = 1 / (1 - p)` up front (e.g. fused CUDA dropout taking a
precomputed scale) omit.

Region: Dropout, training, p == 1.0.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        if self.training and self.p == 1.0 and x.numel():
            keep = torch.zeros_like(x)
            with torch.no_grad():
                scale = torch.tensor(1.0, dtype=torch.float64).div(1.0 - self.p).to(x.dtype)
            noise = keep * scale
            return x.mul_(noise) if self.inplace else x * noise
        return F.dropout(x, self.p, self.training, self.inplace)


def confirm():
    x = torch.randn(4, 5)
    yp = Dropout(1.0).train()(x)
    yt = torch.nn.Dropout(1.0).train()(x)
    nan_p, nan_t = int(torch.isnan(yp).sum()), int(torch.isnan(yt).sum())
    zero_t = bool((yt == 0).all())
    return {"observable": nan_p == x.numel() and nan_t == 0 and zero_t,
            "detail": f"p=1.0, (4,5) finite input: probe {nan_p}/20 NaN, torch {nan_t} NaN (all zero: {zero_t})"}


U.reexport(globals())
