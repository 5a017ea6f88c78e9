"""Feature maps normalised over the batch axis only, one mean and variance per
(channel, position), instead of per channel over N and the spatial axes. The
running statistics are per channel and right. Violates BN-TRAIN-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "statistics taken over N only, per (channel, position)",
          "source": "https://github.com/Nico-Curti/NumPyNet/issues/7 (also deepblacksky/VGG_tensorflow#1)"}


class _PerPosition:
    def normalize(self, xw, mean, var):
        if not self.uses_batch_stats():
            return super().normalize(xw, mean, var)
        mean, var = xw.mean(dim=0, keepdim=True), xw.var(dim=0, unbiased=False, keepdim=True)
        return (xw - mean) / torch.sqrt(var + self.eps)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_PerPosition)
