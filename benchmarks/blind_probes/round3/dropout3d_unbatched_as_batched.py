"""Blind probe: Dropout3d that treats a 4-D (unbatched C, D, H, W) input as batched.

Defect: a 4-D input is passed straight to feature dropout, so the noise has shape (d0, d1, 1, 1):
each (channel, depth-slice) pair is dropped independently, instead of whole channels (torch
unsqueezes a 4-D input to (1, C, D, H, W) and drops per channel). 5-D inputs go through torch.

Inspired by: the behaviour torch.nn.Dropout3d itself had before the unbatched-input support
(feature_dropout applied to whatever dims came in; PyTorch 1.12 added the 4-D-as-unbatched handling
in torch/nn/functional.py dropout3d, `is_batched = inp_dim == 5 ... input.unsqueeze(0)`).

Region: Dropout3d, training, 0 < p < 1, 4-D input with a depth dimension > 1.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class Dropout3d(torch.nn.Dropout3d):
    def forward(self, x):
        if x.dim() != 4 or not self.training or self.p in (0.0, 1.0):
            return F.dropout3d(x, self.p, self.training, self.inplace)
        if self.inplace:
            return torch.feature_dropout_(x, self.p, True)
        return torch.feature_dropout(x, self.p, True)


def _mixed(layer):
    torch.manual_seed(0)
    x = torch.ones(16, 4, 3, 3)  # (C, D, H, W)
    k = (layer(x) != 0).flatten(1)
    mixed = int(((k.float().mean(1) > 0) & (k.float().mean(1) < 1)).sum())
    return mixed, float(k.float().mean())


def confirm():
    pm, pk = _mixed(Dropout3d(0.5).train())
    tm, tk = _mixed(torch.nn.Dropout3d(0.5).train())
    return {"observable": pm > 0 and tm == 0,
            "detail": f"unbatched (16,4,3,3), p=0.5: channels partly kept/partly dropped probe {pm}/16 vs torch {tm}/16; "
                      f"keep rate {pk:.3f} vs {tk:.3f}"}


U.reexport(globals())
