"""Keras' momentum convention in a PyTorch-API layer: running <- m running + (1-m) batch,
so momentum weighs the old value instead of the new batch. Violates BN-TRAIN-02."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-02", "summary": "momentum weighs the old running value (Keras convention)",
          "source": "https://github.com/d2l-ai/d2l-en/pull/2213 (also Jermmy/pytorch-quantization-demo#17)"}


class _OldValueWeighted:
    @staticmethod
    def blend(running, batch, m):
        return m * running.to(batch.dtype) + (1 - m) * batch


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_OldValueWeighted)
