"""The working copy is normalised in place, but x.to(float32) returns x itself when x
already is float32 (and float64 stays as is), so the caller's input is overwritten.
Violates BN-INPUT-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-INPUT-01", "summary": "float32/float64 inputs are normalised in place",
          "source": "plausible: Tensor.to() returns self when the dtype already matches"}


class _InPlaceWorkingCopy:
    def normalize(self, xw, mean, var):
        return xw.sub_(self.per_channel(mean, xw)).div_(torch.sqrt(self.per_channel(var, xw) + self.eps))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_InPlaceWorkingCopy)
