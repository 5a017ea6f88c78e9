"""The user's loop of issue 25: a hand-written BatchNorm2d with one planted mistake (the running variance is
updated with the biased batch variance) and torch's own Dropout. benchmarks/user_loop/run.py audits it and
times each phase; my_layers_fixed.py is the same file after the fix."""
import torch
from torch.nn import Dropout  # noqa: F401 - torch's own class, judged under torch's record


class BatchNorm2d(torch.nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = torch.nn.Parameter(torch.ones(num_features))
            self.bias = torch.nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype  # torch's opmath
        if x.numel() == 0:  # an empty batch: nothing to normalise; torch counts it and leaves the statistics
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
            return x.clone()
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            n = x.numel() // x.shape[1]
            if n == 1:
                raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
            xf = x.to(acc)
            mean = xf.mean(dim=(0, 2, 3))
            var = xf.var(dim=(0, 2, 3), unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                    self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                    # the planted mistake: the biased variance (torch uses var * n / (n - 1))
                    self.running_var.mul_(1 - m).add_(m * var.to(self.running_var.dtype))
        else:
            mean, var = self.running_mean.to(acc), self.running_var.to(acc)
        y = (x.to(acc) - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight.to(acc)[None, :, None, None] + self.bias.to(acc)[None, :, None, None]
        return y.to(x.dtype)
