"""torch.nn layers with one deviation of a chosen size, for benchmarks/sensitivity.py.

DROPNORM_DEVIATION names what deviates and DROPNORM_DEVIATION_SIZE by how much (relative,
except keep, which is absolute):
  scale       kept values are x/(1-p) * (1 + size)                         (DO-TRAIN-01)
  keep        each element is kept with probability 1-p + size             (DO-TRAIN-02)
  eps         the normalisation uses eps * (1 + size)                       (BN-TRAIN-01)
  momentum    the running update uses momentum * (1 + size)                 (BN-TRAIN-02)
  correction  running_var is fed var * n/(n-1) * (1 + size)                 (BN-TRAIN-03)
With size 0 each layer is correct.
"""
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import Dropout2d  # noqa: F401  (correct: the benchmark deviates Dropout and BatchNorm)

KIND = os.environ.get("DROPNORM_DEVIATION", "none")
SIZE = float(os.environ.get("DROPNORM_DEVIATION_SIZE", "0"))


class Dropout(nn.Dropout):
    def forward(self, x):
        if not self.training or self.p == 0.0 or KIND not in ("scale", "keep"):
            return super().forward(x)
        if self.p == 1.0:
            return x * 0.0
        q = 1.0 - self.p
        keep = min(1.0, max(0.0, q + SIZE)) if KIND == "keep" else q
        mask = torch.empty_like(x).bernoulli_(keep)
        scale = (1.0 / q) * (1.0 + SIZE if KIND == "scale" else 1.0)
        return x * mask * scale


class _Deviant:
    def forward(self, x):
        if KIND not in ("eps", "momentum", "correction"):
            return super().forward(x)
        self._check_input_dim(x)
        eps = self.eps * (1.0 + SIZE) if KIND == "eps" else self.eps
        if not (self.training or not self.track_running_stats):
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, eps)
        y = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, eps)
        if self.training and self.track_running_stats:
            self._update(x)
        return y

    @torch.no_grad()
    def _update(self, x):
        self.num_batches_tracked += 1
        dims = [0] + list(range(2, x.dim()))
        n = x.numel() // x.shape[1]
        mean = x.mean(dims, dtype=torch.float64)
        var = x.to(torch.float64).var(dims, unbiased=False) * (n / max(n - 1, 1))
        if KIND == "correction":
            var = var * (1.0 + SIZE)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        if KIND == "momentum":
            m = m * (1.0 + SIZE)
        rm, rv = self.running_mean, self.running_var
        rm.copy_(((1 - m) * rm.double() + m * mean).to(rm.dtype))
        rv.copy_(((1 - m) * rv.double() + m * var).to(rv.dtype))


class BatchNorm1d(_Deviant, nn.BatchNorm1d):
    pass


class BatchNorm2d(_Deviant, nn.BatchNorm2d):
    pass


class BatchNorm3d(_Deviant, nn.BatchNorm3d):
    pass
