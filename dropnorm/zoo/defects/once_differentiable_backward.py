"""Normalisation through a hand-written backward that is right to first order but
marked @once_differentiable, so gradient penalties (double backward) fail, as
PyTorch's cuDNN batch norm did (issue 4422). Violates BN-GRAD-04."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._kernels import Normalize

DEFECT = {"clause": "BN-GRAD-04", "summary": "no double backward (custom backward is once_differentiable)",
          "source": "https://github.com/pytorch/pytorch/issues/4422"}


class _FirstOrderOnly:
    def normalize(self, xw, mean, var):
        return Normalize.apply(xw, mean.detach(), var.detach(), self.eps, self.uses_batch_stats())


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_FirstOrderOnly)
