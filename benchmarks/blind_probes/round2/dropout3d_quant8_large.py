"""Blind probe: Dropout3d that quantises p to 8 bits on large inputs.

Defect: for inputs of at least 2**16 elements the keep decision of each (n, c) channel compares a
random byte with round(256 p): channels are kept with probability 1 - round(256 p)/256 instead of
1 - p, while kept channels are still scaled by 1/(1-p). For p = 0.5 (and every multiple of 1/256)
it is exact; for p < 1/512 nothing is ever dropped; p = 0.1 keeps 0.8984 instead of 0.9.

Inspired by: vectorised dropout kernels that draw 8-bit random numbers (4 per 32-bit Philox output,
16 per uint4) for bandwidth and compare them with a threshold precomputed as uint8(p * 256) -- the
precision of p silently becomes 1/256 (several fused-attention kernels store dropout thresholds as
8-bit values); the fast path is taken only above a size cut-off.

Region: Dropout3d, training, numel >= 65536, p not a multiple of 1/256 (largest relative error near
p -> 0 and p -> 1); needs enough channels to measure the keep rate (thousands of (n, c) draws).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

THRESHOLD = 1 << 16


class Dropout3d(torch.nn.Dropout3d):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() < THRESHOLD or x.dim() not in (4, 5):
            return super().forward(x)
        shape = x.shape[:-3] + (1, 1, 1)
        byte = torch.randint(0, 256, shape, dtype=torch.int16)
        keep = byte >= int(round(self.p * 256))
        return U.apply_keep(x, keep, self.p, self.inplace)


def _rate(layer, p):
    torch.manual_seed(5)
    x = torch.ones(4096, 64, 1, 1, 1)
    return float((layer(x) != 0).float().mean())


def confirm():
    out = []
    obs = False
    for p in (0.001, 0.1):
        pr = _rate(Dropout3d(p).train(), p)
        tr = _rate(torch.nn.Dropout3d(p).train(), p)
        se = ((1 - p) * p / (4096 * 64)) ** 0.5
        obs = obs or abs(pr - tr) > 6 * se
        out.append(f"p={p}: keep rate probe {pr:.5f} vs torch {tr:.5f} (expected {1 - p}, se {se:.1e})")
    return {"observable": obs, "detail": "(4096,64,1,1,1): " + "; ".join(out)}


U.reexport(globals())
