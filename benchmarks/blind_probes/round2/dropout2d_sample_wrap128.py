"""Blind probe: Dropout2d whose channel mask repeats every 128 samples.

Defect: for batched 4-D input with N > 128 samples, the (n, c) keep draws are made for 128 samples
only and sample n uses the draws of sample n mod 128 (samples n and n+128 get identical channel
masks). Each channel is still dropped whole, with probability exactly p, and adjacent samples,
channels and successive calls are independent.

Inspired by: channel-dropout kernels launch one block row per sample with the sample index taken
from a grid dimension of fixed size and a grid-stride loop whose Philox subsequence is derived from
blockIdx only (not from the loop iteration) -- so iterations past the first grid pass replay the same
random numbers (cf. the 65535 gridDim.y limit bugs in several CUDA kernels, here with a small grid).

Region: Dropout2d, training, 4-D input with N > 128; visible as agreement between samples at
distance 128 (not between adjacent samples or random pairs, unless the pair happens to be 128 apart).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

GRID = 128


class Dropout2d(torch.nn.Dropout2d):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.dim() != 4 or x.shape[0] <= GRID:
            return super().forward(x)
        N, C = x.shape[:2]
        draws = torch.rand(GRID, C, dtype=torch.float64) < 1 - self.p
        keep = draws[torch.arange(N) % GRID].view(N, C, 1, 1)
        return U.apply_keep(x, keep, self.p, self.inplace)


def _agreement(layer):
    torch.manual_seed(3)
    x = torch.ones(256, 16, 2, 2)
    k = (layer(x) != 0)[:, :, 0, 0]
    return float((k[:128] == k[128:]).float().mean()), float((k[:-1] == k[1:]).float().mean()), float(k.float().mean())


def confirm():
    pl, pa, pr = _agreement(Dropout2d(0.5).train())
    tl, ta, tr = _agreement(torch.nn.Dropout2d(0.5).train())
    return {"observable": pl > 0.99 and abs(tl - 0.5) < 0.1,
            "detail": f"(256,16,2,2), p=0.5: P(mask[n]==mask[n+128]) probe {pl:.3f} vs torch {tl:.3f}; adjacent "
                      f"samples probe {pa:.3f} vs torch {ta:.3f}; keep rate probe {pr:.3f} vs torch {tr:.3f}"}


U.reexport(globals())
