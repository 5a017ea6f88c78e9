"""An empty batch updates the running statistics with its NaN mean and variance
(PyTorch's BatchNorm1d did, issue 12013). Violates BN-TRAIN-07."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-07", "summary": "an empty batch writes NaN into the running statistics",
          "source": "https://github.com/pytorch/pytorch/issues/12013 (comment of 2019-12-31)"}


class _NoEmptyGuard:
    @staticmethod
    def carries_statistics(shape):
        return True


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoEmptyGuard)
