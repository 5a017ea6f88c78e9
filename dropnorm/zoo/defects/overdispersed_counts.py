"""Each sample draws its own drop probability, uniform in [0.7 p, 1.3 p] (clipped to [0, 1]):
the average rate is p, but the kept counts per sample vary far more than Binomial (a jittered
or 'annealed' rate applied per sample). Violates DO-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-03", "summary": "a random drop rate per sample: over-dispersed kept counts",
          "source": "probe: over-dispersed counts (issue 14)"}


class _JitteredRate:
    def draw_keep(self, shape, x):
        if len(shape) < 2:
            return super().draw_keep(shape, x)
        jitter = 1 + 0.6 * (torch.rand((shape[0],) + (1,) * (len(shape) - 1), device=x.device) - 0.5)
        return torch.rand(shape, device=x.device) >= (self.p * jitter).clamp(0, 1)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_JitteredRate)
