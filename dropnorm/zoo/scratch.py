"""dropnorm's own from-scratch, torch.nn-compatible Dropout, Dropout2d and BatchNorm1d/2d/3d.

Written from spec/clauses.toml alone, with plain torch ops and autograd (no
torch.nn.functional dropout or batch_norm). It differs from PyTorch in
legitimate ways: masks come from torch.rand(...) >= p rather than bernoulli_,
dropped units are selected to 0 (so a dropped inf is 0, DO-NONFINITE-01), the
statistics are a two-pass mean/variance in at least float32, and parameters
are validated. It must pass every clause:
    pytest --impl torch-module:dropnorm.zoo.scratch
"""
import math
import numbers

import torch
from torch import nn

__version__ = "scratch-0.1"


def _probability(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


class _DropoutNd(nn.Module):
    channelwise = False

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = _probability("p", p)
        self.inplace = bool(inplace)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.channelwise and x.dim() < 2:
            raise ValueError(f"{type(self).__name__} needs (N, C, ...) input, got shape {tuple(x.shape)}")
        shape = (x.shape[:2] + (1,) * (x.dim() - 2)) if self.channelwise else x.shape
        if self.p == 1.0:
            y = torch.zeros_like(x)
        else:
            keep = torch.rand(shape, device=x.device) >= self.p
            scale = torch.tensor(1.0 / (1.0 - self.p), dtype=x.dtype, device=x.device)
            y = torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))
        if self.inplace:
            with torch.no_grad():
                x.copy_(y)
            return x
        return y

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    pass


class Dropout2d(_DropoutNd):
    channelwise = True


class _BatchNorm(nn.Module):
    ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be finite and > 0, got {eps!r}")
        self.num_features, self.eps = num_features, float(eps)
        self.momentum = None if momentum is None else _probability("momentum", momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if self.affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x):
        if x.dim() not in self.ranks:
            raise ValueError(f"{type(self).__name__} expects input rank in {self.ranks}, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got input shape {tuple(x.shape)}")
        work = torch.float64 if x.dtype == torch.float64 else torch.float32  # accumulate in >= float32
        view = (1, -1) + (1,) * (x.dim() - 2)
        axes = [0] + list(range(2, x.dim()))
        xw = x.to(work)
        n = x.numel() // x.shape[1]
        if self.training or not self.track_running_stats:
            if self.training and n == 1:
                raise ValueError(f"more than 1 value per channel is needed in training, got shape {tuple(x.shape)}")
            if n == 0:
                self._count()
                return x.clone()
            mean = xw.mean(dim=axes)
            var = ((xw - mean.view(view)) ** 2).mean(dim=axes)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean.to(work), self.running_var.to(work)
        y = (xw - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            y = y * self.weight.to(work).view(view) + self.bias.to(work).view(view)
        return y.to(x.dtype)

    def _count(self):
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1

    @torch.no_grad()
    def _update(self, mean, var, n):
        self._count()
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / (n - 1))
        dt = self.running_mean.dtype
        self.running_mean.copy_(((1 - m) * self.running_mean.to(mean.dtype) + m * mean).to(dt))
        self.running_var.copy_(((1 - m) * self.running_var.to(var.dtype) + m * unbiased).to(dt))


class BatchNorm1d(_BatchNorm):
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    ranks = (4,)


class BatchNorm3d(_BatchNorm):
    ranks = (5,)
