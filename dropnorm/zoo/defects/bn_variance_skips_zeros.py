"""The batch variance sums the squared deviations of the non-zero elements only and divides by the
full count: a sparse (post-ReLU) reduction's shortcut applied to the centred second moment, where a
zero contributes mu^2, not nothing. Exact on inputs without exact zeros. Violates BN-TRAIN-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "variance skips exact zeros (sparse-input shortcut)",
          "source": "probe: benchmarks/blind_probes/round2/bn3d_sparse_zero_skip.py (issue 22)"}


class _SkipZeros:
    def batch_stats(self, xw):
        axes = self.axes(xw)
        mean = xw.mean(dim=axes)
        dev2 = (xw - self.per_channel(mean, xw)) ** 2 * (xw != 0).to(xw.dtype)
        return mean, dev2.mean(dim=axes)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_SkipZeros)
