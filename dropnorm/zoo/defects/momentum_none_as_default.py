"""momentum=None falls back to the default 0.1 instead of the cumulative average.
Violates BN-TRAIN-04."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-04", "summary": "momentum=None is treated as momentum 0.1",
          "source": "plausible: momentum=None unsupported (cf. pytorch/pytorch#31498)"}


class _DefaultMomentum:
    def momentum_factor(self):
        return 0.1 if self.momentum is None else self.momentum


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_DefaultMomentum)
