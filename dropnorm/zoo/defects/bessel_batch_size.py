"""Bessel's correction with the batch size N instead of n = N * spatial size, the
values per channel: N/(N-1) var (no correction for N = 1). Violates BN-TRAIN-03."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-03", "summary": "running variance corrected by N/(N-1) instead of n/(n-1)",
          "source": "plausible: named in BN-TRAIN-03's rationale (cf. the review of tinygrad/tinygrad#807)"}


class _BatchSizeBessel:
    @staticmethod
    def running_var_sample(var, shape):
        n = shape[0]
        return var * (n / max(n - 1, 1))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_BatchSizeBessel)
