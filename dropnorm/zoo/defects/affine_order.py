"""The affine step in the wrong order, y = gamma * (xhat + beta). Violates BN-TRAIN-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "y = gamma * (xhat + beta)",
          "source": "plausible: shift and scale applied in the wrong order (named in BN-TRAIN-01's rationale)"}


class _ShiftThenScale:
    def affine_transform(self, xhat):
        w, b = self.weight.to(xhat.dtype), self.bias.to(xhat.dtype)
        return (xhat + self.per_channel(b, xhat)) * self.per_channel(w, xhat)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_ShiftThenScale)
