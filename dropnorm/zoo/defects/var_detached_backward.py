"""The batch variance is detached from autograd, so the backward treats it as a
constant and misses the xhat * mean(dy * xhat) term (the input gradient still sums
to zero per channel). Violates BN-GRAD-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-GRAD-01", "summary": "the backward ignores the dependence of the variance on x",
          "source": "https://github.com/abhiskk/ladder/issues/2 (also facebookresearch/CrypTen#143)"}


class _ConstantVariance:
    def batch_stats(self, xw):
        mean, var = super().batch_stats(xw)
        return mean, var.detach()


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_ConstantVariance)
