"""Shared helpers for the blind probes (benchmarks/blind_probes/round2/*.py).

Written without reading the suite's tests: only torch's documented behaviour and its source
(torch/nn/modules/batchnorm.py, dropout.py, ATen's Dropout.cpp structure) are used.

- `manual_bn`: a from-scratch BatchNorm training/eval step (autograd-differentiable) that takes the
  batch-statistics function as an argument. The probes call it only inside their defect's region,
  with a stats function that carries the defect; `correct_bn_welford.py` runs it everywhere with a
  correct (Chan/Welford-merged) stats function, which is the check that the machinery itself is sound.
- `apply_keep`: applies a boolean keep mask the way ATen's CPU dropout does
  (noise = mask.to(dtype); noise.div_(1 - p); y = x * noise), inplace or not.
"""
from __future__ import annotations

import torch

TORCH_EXPORTS = (
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
    "LazyBatchNorm3d", "SyncBatchNorm",
)


def reexport(namespace: dict) -> None:
    """Put torch.nn's classes into a probe module's namespace, except those the module defines."""
    for name in TORCH_EXPORTS:
        namespace.setdefault(name, getattr(torch.nn, name))


def apply_keep(x: torch.Tensor, keep: torch.Tensor, p: float, inplace: bool) -> torch.Tensor:
    noise = keep.to(x.dtype)
    noise.div_(1 - p)
    if inplace:
        return x.mul_(noise)
    return x * noise


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def reduce_dims(x: torch.Tensor) -> list:
    return [0] + list(range(2, x.dim()))


def per_channel(x: torch.Tensor) -> torch.Tensor:
    """(C, M) view of x's values per channel, in logical (N, spatial) order."""
    C = x.shape[1]
    return x.transpose(0, 1).reshape(C, -1)


def exact_stats(xc: torch.Tensor):
    """Correct biased batch statistics, two-pass."""
    dims = reduce_dims(xc)
    mean = xc.mean(dims)
    shape = [1, xc.shape[1]] + [1] * (xc.dim() - 2)
    var = ((xc - mean.view(shape)) ** 2).mean(dims)
    return mean, var


def uses_batch_stats(m) -> bool:
    return m.training or (m.running_mean is None and m.running_var is None)


def manual_bn(m, x: torch.Tensor, stats_fn) -> torch.Tensor:
    """BatchNorm forward of module m on x: batch statistics from stats_fn(xc) -> (mean, biased var),
    xc being x in the compute dtype; the running update as torch documents it (unbiased variance,
    momentum or the cumulative average with momentum=None)."""
    m._check_input_dim(x)
    C = x.shape[1]
    if C != m.num_features:
        raise RuntimeError(f"expected {m.num_features} channels, got input of shape {tuple(x.shape)}")
    cdt = compute_dtype(x)
    shape = [1, C] + [1] * (x.dim() - 2)
    factor = 0.0 if m.momentum is None else m.momentum
    if m.training and m.track_running_stats and m.num_batches_tracked is not None:
        m.num_batches_tracked.add_(1)
        factor = 1.0 / float(m.num_batches_tracked) if m.momentum is None else m.momentum
    xc = x.to(cdt)
    if uses_batch_stats(m):
        n = x.numel() // C
        if n == 1 and m.training:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        if n == 0:
            return x.clone()
        mean, var = stats_fn(xc)
        inv = torch.rsqrt(var + m.eps)
        y = (xc - mean.view(shape)) * inv.view(shape)
        if m.training and m.track_running_stats and m.running_mean is not None:
            with torch.no_grad():
                rm, rv = m.running_mean, m.running_var
                rm.copy_((factor * mean.detach() + (1 - factor) * rm.to(cdt)).to(rm.dtype))
                unb = var.detach() * (n / (n - 1))
                rv.copy_((factor * unb + (1 - factor) * rv.to(cdt)).to(rv.dtype))
    else:
        rm = m.running_mean.to(cdt)
        rv = m.running_var.to(cdt)
        y = (xc - rm.view(shape)) * torch.rsqrt(rv + m.eps).view(shape)
    if m.affine:
        y = y * m.weight.to(cdt).view(shape) + m.bias.to(cdt).view(shape)
    return y.to(x.dtype)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    d = (a.double() - b.double()).abs()
    d = torch.where(torch.isnan(a.double()) & torch.isnan(b.double()), torch.zeros_like(d), d)
    return float(torch.nan_to_num(d, nan=float("inf")).max()) if d.numel() else 0.0
