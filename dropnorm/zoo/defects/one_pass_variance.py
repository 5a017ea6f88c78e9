"""The one-pass variance E[x^2] - E[x]^2, without a clamp: for inputs with a large
offset the two terms cancel, the error grows with the square of the offset, and the
variance can even turn negative (NaN output; Flax issue 1491, Keras PR 18795).
Violates BN-NUM-02 (and, on the rarer examples where it turns negative, BN-NUM-01)."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-NUM-02", "summary": "variance as E[x^2] - E[x]^2: accuracy lost quadratically in the offset",
          "source": "https://github.com/google/flax/issues/1491 "
                    "(also keras-team/keras#18795, tenstorrent/tt-metal#45968)"}


class _OnePass:
    def batch_stats(self, xw):
        axes = self.axes(xw)
        mean = xw.mean(dim=axes)
        return mean, (xw * xw).mean(dim=axes) - mean * mean


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_OnePass)
