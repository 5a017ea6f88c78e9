"""The normalised input is multiplied by the weight and by the bias, as the prose of
source document 002 says, y = gamma * beta * xhat. Violates BN-TRAIN-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "y = gamma * beta * xhat (bias multiplied, not added)",
          "source": "ledger L-002-20"}


class _BiasMultiplied:
    def affine_transform(self, xhat):
        w, b = self.weight.to(xhat.dtype), self.bias.to(xhat.dtype)
        return xhat * self.per_channel(w, xhat) * self.per_channel(b, xhat)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_BiasMultiplied)
