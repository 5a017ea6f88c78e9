"""The one-pass variance E[x^2] - E[x]^2 clamped at 0, in float32 (Keras's and Flax's fast
variance, and the probe of issue 14): never negative, so outputs stay finite and bounded
by the clamp, but for an offset of more than about 64 standard deviations var + eps keeps
fewer than half of float32's digits. The former tolerance accepted it (only the SHOULD
clause BN-NUM-02 failed). Violates BN-NUM-03/half-digits."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-NUM-03",
          "summary": "variance as max(E[x^2] - E[x]^2, 0): var + eps loses more than half its digits at large offsets",
          "source": "probe: issue 14 (float32 one-pass clamped variance accepted by the BN-TRAIN-01 tolerance); "
                    "cf. keras-team/keras#18795 (the clamp), google/flax#1491"}


class _OnePassClamped:
    def batch_stats(self, xw):
        axes = self.axes(xw)
        mean = xw.mean(dim=axes)
        return mean, ((xw * xw).mean(dim=axes) - mean * mean).clamp_min(0.0)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_OnePassClamped)
