"""The one-pass variance E[x^2] - E[x]^2, without a clamp: for inputs with a large
offset it cancels to a negative number and sqrt(var + eps) is NaN (Flax issue 1491,
Keras PR 18795). Violates BN-NUM-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-NUM-01", "summary": "variance as E[x^2] - E[x]^2 goes negative: NaN output",
          "source": "https://github.com/google/flax/issues/1491 (also keras-team/keras#18795, tenstorrent/tt-metal#45968)"}


class _OnePass:
    def batch_stats(self, xw):
        axes = self.axes(xw)
        mean = xw.mean(dim=axes)
        return mean, (xw * xw).mean(dim=axes) - mean * mean


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_OnePass)
