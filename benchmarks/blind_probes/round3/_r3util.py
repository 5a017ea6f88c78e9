"""Helpers for the round-3 blind probes (files starting with '_' are not probes).

`bn_forward` is blindprobe_util.manual_bn with one more hook: `inv_fn(var, eps)` gives the inverse
standard deviation used to normalise (batch statistics in training, running statistics in eval), so a
probe can change the normalisation formula without touching the statistics or the running update.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U  # noqa: E402


def rsqrt_inv(var, eps):
    return torch.rsqrt(var + eps)


def bn_forward(m, x, stats_fn=U.exact_stats, inv_fn=rsqrt_inv):
    m._check_input_dim(x)
    C = x.shape[1]
    if C != m.num_features:
        raise RuntimeError(f"expected {m.num_features} channels, got input of shape {tuple(x.shape)}")
    cdt = U.compute_dtype(x)
    shape = [1, C] + [1] * (x.dim() - 2)
    factor = 0.0 if m.momentum is None else m.momentum
    if m.training and m.track_running_stats and m.num_batches_tracked is not None:
        m.num_batches_tracked.add_(1)
        factor = 1.0 / float(m.num_batches_tracked) if m.momentum is None else m.momentum
    xc = x.to(cdt)
    if U.uses_batch_stats(m):
        n = x.numel() // C
        if n == 1 and m.training:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        if n == 0:
            return x.clone()
        mean, var = stats_fn(xc)
        y = (xc - mean.view(shape)) * inv_fn(var, m.eps).view(shape)
        if m.training and m.track_running_stats and m.running_mean is not None:
            with torch.no_grad():
                rm, rv = m.running_mean, m.running_var
                rm.copy_((factor * mean.detach() + (1 - factor) * rm.to(cdt)).to(rm.dtype))
                unb = var.detach() * (n / (n - 1))
                rv.copy_((factor * unb + (1 - factor) * rv.to(cdt)).to(rv.dtype))
    else:
        rm = m.running_mean.to(cdt)
        rv = m.running_var.to(cdt)
        y = (xc - rm.view(shape)) * inv_fn(rv, m.eps).view(shape)
    if m.affine:
        y = y * m.weight.to(cdt).view(shape) + m.bias.to(cdt).view(shape)
    return y.to(x.dtype)
