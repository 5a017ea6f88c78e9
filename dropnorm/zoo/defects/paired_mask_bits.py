"""One random number decides two neighbouring elements (a vectorised generator whose
draw is reused across lanes): the keep rate is right, neighbours always agree.
Violates DO-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-03", "summary": "neighbouring elements share one random draw",
          "source": "plausible: a random draw reused across vector lanes"}


class _PairedDraws:
    def draw_keep(self, shape, x):
        n = x.numel()
        draws = torch.rand((n + 1) // 2, device=x.device).repeat_interleave(2)[:n]
        return (draws >= self.p).view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_PairedDraws)
