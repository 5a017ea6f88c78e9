"""Blind probe: Dropout whose vectorised tail path uses one random value per 4 elements beyond 2**20.

Defect: for flat (logical) indices >= 2**20, the 4 elements of each aligned quad share one uniform
(lane 0's), so their keep decisions are identical; the first 2**20 elements are correct, and the keep
rate stays exactly 1-p everywhere.

Inspired by: Philox4x32 returns 4 uint32 per counter; a vectorised (float4) kernel path for the part of
a tensor beyond the first grid-stride pass should consume all 4 lanes but indexes lane 0 for every
element (a `rand.x` used where `rand.x/.y/.z/.w` were meant) -- the classic "4-values-per-draw" bug
that only appears once the tensor outgrows one pass of the grid.

Region: Dropout, training, numel > 2**20 = 1048576; visible as lag-1/2/3 dependence in memory order
among elements past index 2**20, never in smaller tensors.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U

BOUND = 1 << 20


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() <= BOUND:
            return F.dropout(x, self.p, self.training, self.inplace)
        n = x.numel()
        u = torch.rand(n, dtype=torch.float64)
        tail = u[BOUND:]
        lane0 = tail[::4].repeat_interleave(4)[: tail.numel()]
        u = torch.cat([u[:BOUND], lane0])
        keep = (u < 1 - self.p).reshape(x.shape)
        return U.apply_keep(x, keep, self.p, self.inplace)


def _lag1(layer):
    torch.manual_seed(7)
    x = torch.ones(BOUND + (1 << 16))
    m = (layer(x) != 0)[BOUND:]
    head = (layer(torch.ones(1 << 16)) != 0)
    return float((m[0::4] == m[1::4]).float().mean()), float((head[0::4] == head[1::4]).float().mean()), \
        float(m.float().mean())


def confirm():
    p_tail, p_small, p_rate = _lag1(Dropout(0.5).train())
    t_tail, t_small, t_rate = _lag1(torch.nn.Dropout(0.5).train())
    observable = p_tail > 0.99 and abs(t_tail - 0.5) < 0.02
    return {"observable": observable,
            "detail": f"p=0.5, 2**20+2**16 elements: lag-1 agreement within quads past 2**20 probe {p_tail:.4f} vs "
                      f"torch {t_tail:.4f}; on a 2**16 tensor probe {p_small:.4f} vs torch {t_small:.4f}; "
                      f"tail keep rate probe {p_rate:.4f} vs torch {t_rate:.4f}"}


U.reexport(globals())
