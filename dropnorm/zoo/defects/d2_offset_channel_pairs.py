"""Dropout2d: channels 2c+1 and 2c+2 of a sample share one draw (channel lanes offset by one).
Violates D2-TRAIN-04."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-TRAIN-04", "summary": "channels 2c+1 and 2c+2 share one draw",
          "source": "probe: offset-pair shared draw between Dropout2d channels (issue 14)"}


class _OffsetChannelPairs:
    def draw_keep(self, shape, x):
        n, c = shape[0], shape[1]
        draws = torch.rand(n, c // 2 + 2, device=x.device).repeat_interleave(2, dim=1)[:, 1:c + 1]
        return (draws >= self.p).view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_OffsetChannelPairs)
