"""The moving average of source document 000 with its sign error:
running <- (1-m) running - m batch. Violates BN-TRAIN-02."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-02", "summary": "running statistics updated as (1-m) r - m batch",
          "source": "ledger L-000-18"}


class _MinusSign:
    @staticmethod
    def blend(running, batch, m):
        return (1 - m) * running.to(batch.dtype) - m * batch


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_MinusSign)
