"""Eval mode normalises with the statistics of the batch it is given instead of the
running statistics (test-time batch statistics, as in cbfinn/maml#9). Violates BN-EVAL-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-EVAL-01", "summary": "eval mode uses batch statistics",
          "source": "https://github.com/cbfinn/maml/issues/9 (also SimJeg/FC-DenseNet#8)"}


class _AlwaysBatchStats:
    def uses_batch_stats(self):
        return True


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_AlwaysBatchStats)
