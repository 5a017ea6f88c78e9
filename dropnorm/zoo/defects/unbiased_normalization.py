"""torch.var's default (unbiased=True) used as the batch variance: right for the running
variance, wrong for normalising the batch, which needs the biased variance (source
document 002's code normalises with ddof=1). Violates BN-TRAIN-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "the batch is normalised with the unbiased (n-1) variance",
          "source": "ledger L-002-17 (cf. pytorch/pytorch#3122)"}


class _UnbiasedEverywhere:
    def batch_stats(self, xw):
        return xw.mean(dim=self.axes(xw)), xw.var(dim=self.axes(xw))  # unbiased by default

    @staticmethod
    def running_var_sample(var, shape):
        return var  # already unbiased


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_UnbiasedEverywhere)
