"""Dropout3d reads a no-batch (C, D, H, W) input as batched (N=C, C=D, H, W): one draw per (c, d) row of
a channel instead of one per channel, as torch's Dropout2d still reads a 3-D input
(pytorch/pytorch#69801). Violates D2-RANK-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import Dropout1d, Dropout3d as _Dropout3d  # noqa: F401

DEFECT = {"clause": "D2-RANK-01", "summary": "a no-batch (C, D, H, W) input is read as (N, C, H, W)",
          "source": "https://github.com/pytorch/pytorch/issues/69801 (Dropout2d's reading, carried to Dropout3d)"}


class Dropout3d(_Dropout3d):
    def mask_shape(self, x):
        return x.shape[:2] + (1,) * (x.dim() - 2)  # dims 0 and 1 are always (N, C)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
