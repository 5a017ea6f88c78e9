"""Dropout2d applies its channel mask to the input's memory read with contiguous
strides: channels-last and transposed feature maps are scrambled (PyTorch issue
47176 was a channels-last dropout). Violates D2-DTYPE-01 (its layout part)."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects.raw_storage_mask import StorageOrder

DEFECT = {"clause": "D2-DTYPE-01", "summary": "channels-last and strided inputs are read in storage order",
          "source": "https://github.com/pytorch/pytorch/issues/47176"}

Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=StorageOrder)
