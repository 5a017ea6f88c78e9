"""Dropout2d draws one channel mask of shape (1, C, 1, 1) for the whole batch: every
sample loses the same channels (Lux.jl's documented Dropout2d recipe did this).
Violates D2-TRAIN-04."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-TRAIN-04", "summary": "one channel mask is shared by all samples of the batch",
          "source": "https://github.com/LuxDL/Lux.jl/pull/770"}


class _SharedChannels:
    def mask_shape(self, x):
        return (1, x.shape[1]) + (1,) * (x.dim() - 2)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_SharedChannels)
