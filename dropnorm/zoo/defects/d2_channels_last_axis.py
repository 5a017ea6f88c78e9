"""Dropout2d ported from a channels-last framework (MLX's Dropout2d expects NHWC):
the mask varies along the last axis, so an (N, C, H, W) plane is dropped only in
part. Violates D2-TRAIN-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-TRAIN-01", "summary": "the last axis is taken for the channel axis (NHWC mask on NCHW input)",
          "source": "https://github.com/ml-explore/mlx/pull/250 (channels-last Dropout2d); cf. pytorch/pytorch#69801"}


class _LastAxisChannels:
    def mask_shape(self, x):
        return (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_LastAxisChannels)
