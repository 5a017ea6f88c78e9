"""The numpy batch_normalization of source document 002: one mean over the whole array
and the n-1 variance, np.mean(x) and np.var(x, ddof=1), instead of per-channel
statistics with the biased variance. Violates BN-TRAIN-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "one global mean and the unbiased global variance",
          "source": "ledger L-002-16, L-002-17"}


class _GlobalStats:
    def batch_stats(self, xw):
        c = xw.shape[1]
        return xw.mean().expand(c), xw.var(unbiased=True).expand(c)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_GlobalStats)
