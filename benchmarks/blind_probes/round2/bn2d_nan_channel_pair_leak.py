"""Blind probe: BatchNorm2d where a non-finite value in channel 2k poisons channel 2k+1.

Defect: in training (batch statistics), when an even channel 2k's input contains NaN or +-inf, its
odd neighbour 2k+1 gets NaN batch statistics too: its whole output is NaN and, when tracked, its
running mean and variance become NaN. Channels are otherwise exact (torch's own kernel), and finite
inputs are never affected.

Inspired by: reductions that process two channels per vector lane (float2/half2 packing of adjacent
channels, or a paired-channel Welford) and keep one shared "saw non-finite" flag or one shared
scale per lane, so a NaN in one packed channel contaminates the other.

Region: BatchNorm2d, batch statistics, NaN or inf in an even-indexed channel that has a right
neighbour (C >= 2).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        y = super().forward(x)
        if not U.uses_batch_stats(self) or x.dim() != 4 or x.numel() == 0 or x.shape[1] < 2:
            return y
        bad = ~torch.isfinite(x).all(dim=0).flatten(1).all(dim=1)  # (C,)
        poisoned = torch.zeros_like(bad)
        poisoned[1::2] = bad[0::2][: poisoned[1::2].numel()]
        if not bool(poisoned.any()):
            return y
        if self.training and self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean[poisoned] = float("nan")
                self.running_var[poisoned] = float("nan")
        nan = torch.where(poisoned, torch.tensor(float("nan")), torch.tensor(0.0)).to(y.dtype).view(1, -1, 1, 1)
        return y + nan


def confirm():
    torch.manual_seed(0)
    x = torch.randn(4, 4, 3, 3)
    x[0, 0, 0, 0] = float("nan")
    p, t = BatchNorm2d(4).train(), torch.nn.BatchNorm2d(4).train()
    y, r = p(x), t(x)
    pn = [bool(torch.isnan(y[:, c]).all()) for c in range(4)]
    tn = [bool(torch.isnan(r[:, c]).all()) for c in range(4)]
    return {"observable": pn != tn,
            "detail": f"one NaN in channel 0 of (4,4,3,3): channels entirely NaN probe {pn} vs torch {tn}; "
                      f"running_mean probe {p.running_mean.tolist()} vs torch {t.running_mean.tolist()}"}


U.reexport(globals())
