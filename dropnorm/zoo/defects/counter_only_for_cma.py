"""num_batches_tracked is only counted when momentum=None needs it, as proposed in
PyTorch issue 30440: with a numeric momentum it stays 0. Violates BN-TRAIN-05."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-05", "summary": "num_batches_tracked not incremented unless momentum=None",
          "source": "https://github.com/pytorch/pytorch/issues/30440"}


class _CountWhenNeeded:
    def count(self):
        if self.momentum is None:
            super().count()


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CountWhenNeeded)
