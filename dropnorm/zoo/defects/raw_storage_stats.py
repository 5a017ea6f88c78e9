"""Batch norm computed on the input's memory read with contiguous strides, so
channels-last, transposed and sliced inputs mix channels (channels-last batch norm
gave wrong results in PyTorch issue 62594). Violates BN-LAYOUT-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._kernels import storage_as_contiguous

DEFECT = {"clause": "BN-LAYOUT-01", "summary": "non-contiguous inputs are read in storage order",
          "source": "https://github.com/pytorch/pytorch/issues/62594 (also tensorflow/tfjs#1106)"}


class _StorageOrder:
    def working_copy(self, x):
        return super().working_copy(storage_as_contiguous(x))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_StorageOrder)
