"""No check for one value per channel in training: the layer runs into Bessel's
n/(n-1) = 1/0 instead of raising a clear ValueError (PyTorch issue 1381: NaN running
variance for a batch of one). Violates BN-TRAIN-06."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-06", "summary": "n = 1 value per channel is not rejected in training",
          "source": "https://github.com/pytorch/pytorch/issues/1381 (also torch/nn#1271)"}


class _NoValueCheck:
    def check_values(self, x):
        pass


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoValueCheck)
