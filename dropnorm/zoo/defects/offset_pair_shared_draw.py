"""One random number decides elements 2j+1 and 2j+2 (a vectorised generator whose lanes are
offset by one from the pairs the suite once tested): the keep rate is right, and the aligned
pairs (2j, 2j+1) are independent. Violates DO-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-03", "summary": "elements 2j+1 and 2j+2 share one random draw",
          "source": "probe: offset-pair shared draw (issue 14), outside the catalogue's aligned pairs"}


class _OffsetPairedDraws:
    def draw_keep(self, shape, x):
        n = x.numel()
        draws = torch.rand(n // 2 + 2, device=x.device).repeat_interleave(2)[1:n + 1]
        return (draws >= self.p).view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_OffsetPairedDraws)
