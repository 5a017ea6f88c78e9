"""A kernel that maps channels to a CUDA grid dimension limited to 65535 blocks never processes channel
65535 and beyond: their output stays zero (the allocation's initial value). Narrow layers are exact.
Violates BN-TRAIN-01 (and BN-EVAL-01): round-3 blind probe bn1d_channels_grid_limit escaped, since no
test drew 65535 channels."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "channels past the 65535-block grid limit are never normalised",
          "source": "blind probe round 3 (issue 22): bn1d_channels_grid_limit; CUDA gridDim.y/z <= 65535"}
GRID_LIMIT = 65535


class _GridLimited:
    def output(self, y, x):
        y = y.clone()
        y[:, GRID_LIMIT:] = 0
        return y.to(x.dtype)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_GridLimited)
