"""With the deterministic-algorithms mode on, the batch statistics come from a different kernel (a one-pass
E[x^2] - E[x]^2 variance, as a 'deterministic fallback'): the same seed and data give other outputs and running
statistics than without the mode. Violates BN-DETERMINISTIC-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-DETERMINISTIC-01", "summary": "deterministic mode switches to a one-pass variance",
          "source": "plausible: a separate deterministic code path with another reduction (issue 24)"}


class _DeterministicOnePass:
    def batch_stats(self, xw):
        if not torch.are_deterministic_algorithms_enabled():
            return super().batch_stats(xw)
        axes = self.axes(xw)
        mean = xw.mean(dim=axes)
        return mean, (xw * xw).mean(dim=axes) - mean * mean


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_DeterministicOnePass)
