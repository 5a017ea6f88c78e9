"""The mask is applied to the input's memory read with contiguous strides, so a
transposed, channels-last or sliced input is scrambled (the CUDA bug of PyTorch
issue 47176). Violates DO-LAYOUT-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._kernels import storage_as_contiguous

DEFECT = {"clause": "DO-LAYOUT-01", "summary": "non-contiguous inputs are read in storage order",
          "source": "https://github.com/pytorch/pytorch/issues/47176"}


class StorageOrder:
    def apply(self, x, keep, scale):
        return super().apply(storage_as_contiguous(x), keep, scale)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=StorageOrder)
