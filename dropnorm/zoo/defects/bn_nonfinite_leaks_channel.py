"""Channels are reduced in pairs (2k, 2k+1) sharing one "saw a non-finite value" flag, as in a
kernel packing two channels per vector lane: an inf or NaN in either channel of a pair gives both
NaN batch statistics. Finite inputs are exact. Violates BN-NONFINITE-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-NONFINITE-01", "summary": "a non-finite value poisons the paired channel's statistics",
          "source": "probe: benchmarks/blind_probes/round2/bn2d_nan_channel_pair_leak.py (issue 22)"}


class _PairedNonfiniteFlag:
    def batch_stats(self, xw):
        mean, var = super().batch_stats(xw)
        bad = ~torch.isfinite(xw.transpose(0, 1).reshape(xw.shape[1], -1)).all(dim=1)
        partner = (torch.arange(bad.numel()) ^ 1).clamp(max=bad.numel() - 1)  # 2k <-> 2k+1
        nan = torch.where(bad | bad[partner], float("nan"), 0.0).to(mean.dtype)
        return mean + nan, var + nan


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_PairedNonfiniteFlag)
