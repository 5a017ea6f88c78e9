"""dropnorm's own from-scratch, torch.nn-compatible Dropout, Dropout2d and BatchNorm1d/2d/3d.

Written from spec/clauses.toml alone, with plain torch ops and autograd (no
torch.nn.functional dropout or batch_norm). It differs from PyTorch in
legitimate ways: masks come from torch.rand(...) >= p rather than bernoulli_,
dropped units are selected to 0 (so a dropped inf is 0, DO-NONFINITE-01), the
statistics are a two-pass mean/variance in at least float32, and parameters
are validated. It must pass every clause:
    pytest --impl torch-module:dropnorm.zoo.scratch

It is also the base of the defect catalogue (dropnorm/zoo/defects/) and of the
correct variants (dropnorm/zoo/variants/): every step of the computation is a
small method, so a defect or a variant overrides exactly one of them
(dropnorm/zoo/build.py derives the classes).
  dropout:   check_p, active, mask_shape, draw_keep, scale, apply, dropped, output
  batchnorm: check_args, check_eps, check_momentum, check_shape, check_values, work_dtype, working_copy,
             uses_batch_stats, batch_stats, eval_stats, normalize, affine_transform,
             output, updates_running, update_running, count, momentum_factor,
             running_var_sample, blend, carries_statistics
"""
import math
import numbers

import torch
from torch import nn

__version__ = "scratch-0.1"


def check_probability(name, value):
    """value as a float in [0, 1]; TypeError for a non-number, ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be finite and > 0, got {eps!r}")
    return float(eps)


# ------------------------------------------------------------------ dropout
class _DropoutNd(nn.Module):
    channelwise = False

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = self.check_p(p)
        self.inplace = bool(inplace)

    def check_p(self, p):
        return check_probability("p", p)

    def mask_shape(self, x):
        """One draw per element, or per (sample, channel) for channel dropout."""
        if not self.channelwise:
            return x.shape
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} needs (N, C, ...) input, got shape {tuple(x.shape)}")
        return x.shape[:2] + (1,) * (x.dim() - 2)

    def draw_keep(self, shape, x):
        """The keep mask: True with probability 1 - p, from torch's default generator."""
        return torch.rand(shape, device=x.device) >= self.p

    def scale(self, x):
        """1/(1-p) in the input dtype."""
        return torch.tensor(1.0 / (1.0 - self.p), dtype=x.dtype, device=x.device)

    def apply(self, x, keep, scale):
        """Kept units scaled, dropped units selected to 0, in the input's memory format (DO-FORMAT-01: the
        mask is drawn in the logical order, so torch.where alone would return the mask's contiguous layout)."""
        y = torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))
        if y.stride() != x.stride() and not x.is_contiguous():
            y = torch.empty_like(x).copy_(y)  # preserve_format: a dense input's strides, else contiguous
        return y

    def dropped(self, x):
        """The training output for p > 0."""
        if self.p == 1.0:
            return torch.zeros_like(x)  # no x * 1/0
        return self.apply(x, self.draw_keep(self.mask_shape(x), x), self.scale(x))

    def active(self):
        """Dropout acts in training mode only, and not at all for p = 0."""
        return self.training and self.p > 0.0

    def output(self, x, y):
        """inplace=True writes y into x and returns x; otherwise y is a new tensor."""
        if self.inplace:
            # recorded by autograd (DO-INPLACE-03): on a leaf that requires grad it raises, after an op whose
            # backward needs its output (exp) the backward raises, never a silently wrong gradient
            return x.copy_(y)
        return y

    def forward(self, x):
        if not self.active():
            return x
        self.mask_shape(x)  # input checks, also at p = 1
        return self.output(x, self.dropped(x))

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    pass


class Dropout2d(_DropoutNd):
    channelwise = True


# ---------------------------------------------------------------- batchnorm
class _BatchNorm(nn.Module):
    ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        if isinstance(momentum, torch.Tensor) and momentum.dim() == 0:  # a 0-dim tensor is its value (BN-MOMTENSOR-01)
            momentum = float(momentum)
        self.check_args(num_features, eps, momentum)
        self.num_features, self.eps = num_features, float(eps)
        self.momentum = None if momentum is None else float(momentum)
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

    def check_args(self, num_features, eps, momentum):
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.check_eps(eps)
        self.check_momentum(momentum)

    @staticmethod
    def check_eps(eps):
        check_eps(eps)

    @staticmethod
    def check_momentum(momentum):
        if momentum is not None:
            check_probability("momentum", momentum)

    def check_shape(self, x):
        if x.dim() not in self.ranks:
            raise ValueError(f"{type(self).__name__} expects input rank in {self.ranks}, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got input shape {tuple(x.shape)}")

    def check_values(self, x):
        """Batch statistics need more than one value per channel (BN-TRAIN-06): in training, and in eval
        without running statistics (it normalises with the batch's, as torch's F.batch_norm checks)."""
        if (self.training or not self.track_running_stats) and x.numel() == x.shape[1]:
            raise ValueError(f"more than 1 value per channel is needed for batch statistics, got shape "
                             f"{tuple(x.shape)}")

    @staticmethod
    def work_dtype(x):
        """Accumulate in at least float32."""
        return torch.float64 if x.dtype == torch.float64 else torch.float32

    def working_copy(self, x):
        return x.to(self.work_dtype(x))

    @staticmethod
    def axes(x):
        """Every axis but the channel axis."""
        return [0] + list(range(2, x.dim()))

    @staticmethod
    def per_channel(v, x):
        return v.view((1, -1) + (1,) * (x.dim() - 2))

    def uses_batch_stats(self):
        """Batch statistics in training, and in eval where the layer holds no running statistics: a layer whose
        track_running_stats was switched off after construction still evaluates with its buffers (BN-TOGGLE-01)."""
        return self.training or self.running_mean is None or self.running_var is None

    def updates_running(self):
        return self.training and self.track_running_stats

    def batch_stats(self, xw):
        """Per-channel mean and biased variance, two-pass."""
        axes = self.axes(xw)
        mean = xw.mean(dim=axes)
        return mean, ((xw - self.per_channel(mean, xw)) ** 2).mean(dim=axes)

    def eval_stats(self, xw):
        return self.running_mean.to(xw.dtype), self.running_var.to(xw.dtype)

    def normalize(self, xw, mean, var):
        return (xw - self.per_channel(mean, xw)) / torch.sqrt(self.per_channel(var, xw) + self.eps)

    def affine_transform(self, xhat):
        w, b = self.weight.to(xhat.dtype), self.bias.to(xhat.dtype)
        return xhat * self.per_channel(w, xhat) + self.per_channel(b, xhat)

    @staticmethod
    def output(y, x):
        return y.to(x.dtype)

    def forward(self, x):
        self.check_shape(x)
        self.check_values(x)
        xw = self.working_copy(x)
        mean, var = self.batch_stats(xw) if self.uses_batch_stats() else self.eval_stats(xw)
        y = self.normalize(xw, mean, var)
        if self.affine:
            y = self.affine_transform(y)
        if self.updates_running():
            stats = (mean, var) if self.uses_batch_stats() else self.batch_stats(xw)
            self.update_running(stats[0].detach(), stats[1].detach(), x.shape)
        return self.output(y, x)

    def count(self):
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1

    def momentum_factor(self):
        """m: the momentum, or 1/t (t counted after the increment) for momentum=None."""
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum

    @staticmethod
    def running_var_sample(var, shape):
        """The unbiased batch variance that the running variance averages: n/(n-1) var."""
        n = math.prod(shape) // shape[1]
        return var * (n / (n - 1))

    @staticmethod
    def blend(running, batch, m):
        """(1 - m) * running + m * batch, in the batch statistic's precision."""
        return (1 - m) * running.to(batch.dtype) + m * batch

    @staticmethod
    def carries_statistics(shape):
        """An empty batch has no statistics and leaves the running ones alone (BN-TRAIN-07)."""
        return math.prod(shape) > 0

    @torch.no_grad()
    def update_running(self, mean, var, shape):
        self.count()
        if not self.carries_statistics(shape):
            return
        m = self.momentum_factor()
        dt = self.running_mean.dtype
        self.running_mean.copy_(self.blend(self.running_mean, mean, m).to(dt))
        self.running_var.copy_(self.blend(self.running_var, self.running_var_sample(var, shape), m).to(dt))


class BatchNorm1d(_BatchNorm):
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    ranks = (4,)


class BatchNorm3d(_BatchNorm):
    ranks = (5,)
