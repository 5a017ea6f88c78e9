"""Blind probe: Dropout whose RNG offset advances too little between calls on large tensors.

Defect: for inputs of at least 2**16 elements, consecutive training calls with no other use of the
generator in between reuse the previous call's random stream shifted by 1024 elements (the mask of
call k at element i equals the mask of call k-1 at element i + 1024); only the last 1024 values are
fresh. Reseeding reproduces everything (the stream is a function of the generator state).

Inspired by: Philox-based kernels advance the generator offset by a per-call increment computed from
the launch configuration (threads x unroll); a wrong increment (e.g. counting 4-wide vector steps
as elements, or capping the grid) makes call k start inside call k-1's counter range, so masks of
successive calls are shifted copies (cf. pytorch/pytorch issues on `philox_offset` increments for
fused dropout).

Region: Dropout, training, numel >= 65536, at least two successive calls with nothing else drawing
from the default generator in between; visible only when comparing call k with call k-1 at a lag of
1024 elements (same-position agreement is 50 % as for independent masks).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U

THRESHOLD = 1 << 16
SHIFT = 1024
_last = {"state": None, "u": None}


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() < THRESHOLD:
            return F.dropout(x, self.p, self.training, self.inplace)
        n = x.numel()
        prev = _last["u"]
        if prev is not None and prev.numel() > SHIFT and torch.equal(_last["state"], torch.get_rng_state()):
            reused = prev[SHIFT:SHIFT + n]
            fresh = torch.rand(n - reused.numel(), dtype=torch.float64)
            u = torch.cat([reused, fresh])
        else:
            u = torch.rand(n, dtype=torch.float64)
        _last["u"], _last["state"] = u, torch.get_rng_state()
        keep = (u < 1 - self.p).reshape(x.shape)
        return U.apply_keep(x, keep, self.p, self.inplace)


def _shift_agreement(layer):
    torch.manual_seed(1234)
    x = torch.ones(1 << 17)
    m1 = layer(x) != 0
    m2 = layer(x) != 0
    same_pos = float((m1 == m2).float().mean())
    lagged = float((m2[:-SHIFT] == m1[SHIFT:]).float().mean())
    return same_pos, lagged


def confirm():
    _last["u"] = None
    ps, pl = _shift_agreement(Dropout(0.5).train())
    ts, tl = _shift_agreement(torch.nn.Dropout(0.5).train())
    observable = pl > 0.99 and abs(tl - 0.5) < 0.02
    return {"observable": observable,
            "detail": f"2**17 elements, p=0.5, two calls: P(mask2[i] == mask1[i+{SHIFT}]) probe {pl:.4f} vs "
                      f"torch {tl:.4f}; same-position agreement probe {ps:.4f} vs torch {ts:.4f}"}


U.reexport(globals())
