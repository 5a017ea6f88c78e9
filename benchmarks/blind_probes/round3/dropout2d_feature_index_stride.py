"""Blind probe: Dropout2d whose per-(sample, channel) noise index is n + c instead of n*C + c.

Defect: the feature mask is drawn exactly as torch draws it (N*C Bernoulli values, same generator
draw) but the kernel reads the value for sample n, channel c at linear index n + c (a stride of 1
for the batch dimension instead of C). Channel c of sample n therefore shares its keep/drop decision
with channel c-1 of sample n+1 (and the mask has only N + C - 1 distinct entries): decisions are not
independent across samples. Unbatched (C, H, W) inputs and N == 1 are unaffected.

Inspired by: feature-dropout kernels that broadcast a (N, C, 1, 1) noise tensor by hand-computed
linear indices (ATen builds it with make_feature_noise in aten/src/ATen/native/Dropout.cpp and lets
broadcasting index it); a missing stride multiplication in such an index is a classic bug.

Region: Dropout2d, training, 0 < p < 1, batched 4-D input with N >= 2 and C >= 2.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class Dropout2d(torch.nn.Dropout2d):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.dim() != 4 or x.shape[0] < 2 or x.shape[1] < 2:
            return F.dropout2d(x, self.p, self.training, self.inplace)
        N, C = x.shape[:2]
        flat = F.dropout2d(torch.ones(N, C, 1, 1, dtype=x.dtype, device=x.device), self.p, True).view(-1)
        idx = (torch.arange(N, device=x.device).view(N, 1) + torch.arange(C, device=x.device).view(1, C)) % (N * C)
        keep = (flat[idx] != 0).view(N, C, 1, 1)
        return U.apply_keep(x, keep, self.p, self.inplace)


def _diag(layer):
    torch.manual_seed(0)
    x = torch.ones(64, 32, 2, 2)
    k = (layer(x) != 0)[:, :, 0, 0]
    agree = float((k[:-1, 1:] == k[1:, :-1]).float().mean())
    return agree, float(k.float().mean())


def confirm():
    pa, pk = _diag(Dropout2d(0.5).train())
    ta, tk = _diag(torch.nn.Dropout2d(0.5).train())
    return {"observable": pa == 1.0 and abs(ta - 0.5) < 0.05,
            "detail": f"(64,32,2,2), p=0.5: P(keep[n, c+1] == keep[n+1, c]) probe {pa:.3f} vs torch {ta:.3f}; "
                      f"keep rate {pk:.3f} vs {tk:.3f}"}


U.reexport(globals())
