"""Samples 2i+1 and 2i+2 of a batch share one mask (a batch split into pairs off by one, e.g.
after a leading sample is handled apart); aligned pairs (2i, 2i+1) are independent.
Violates DO-TRAIN-04."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-04", "summary": "samples 2i+1 and 2i+2 share one mask",
          "source": "probe: row-pair dependence at odd rows (issue 14)"}


class _OddRowPairs:
    def draw_keep(self, shape, x):
        if len(shape) < 2 or shape[0] < 3:
            return super().draw_keep(shape, x)
        n = shape[0]
        rows = torch.rand((n // 2 + 2,) + tuple(shape[1:]), device=x.device)
        idx = torch.div(torch.arange(1, n + 1, device=x.device), 2, rounding_mode="floor")
        return rows[idx] >= self.p  # row 0 alone; rows (1, 2), (3, 4), ... share


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_OddRowPairs)
