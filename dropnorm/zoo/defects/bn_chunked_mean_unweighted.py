"""Two-stage batch mean over chunks of 64 samples: the partial means are averaged without their
counts, so a short last chunk weighs as much as a full one (exact for N <= 64 or N a multiple of
64); the variance is taken about that mean. Violates BN-TRAIN-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-01", "summary": "chunked (64-sample) mean averages the partial means unweighted",
          "source": "probe: benchmarks/blind_probes/round2/bn1d_block_mean_unweighted.py (issue 22)"}


class _UnweightedChunks:
    def batch_stats(self, xw):
        axes = self.axes(xw)
        mean = torch.stack([chunk.mean(dim=axes) for chunk in torch.split(xw, 64, dim=0)]).mean(dim=0)
        return mean, ((xw - self.per_channel(mean, xw)) ** 2).mean(dim=axes)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_UnweightedChunks)
