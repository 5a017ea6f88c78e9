"""Blind probe: Dropout(inplace=True) that loses the in-place write on non-contiguous inputs.

Defect: with inplace=True the kernel works on `x.contiguous()`; for a contiguous input that is x
itself and the result is written into it (and returned), but for a non-contiguous input (a transpose,
a strided slice, channels-last) it is a fresh copy: the copy is modified and returned, and the
caller's tensor is left unchanged. Values, mask and statistics are right.

Inspired by: custom/fused kernels that require contiguous memory and call .contiguous() on entry,
then implement "inplace" as writing to that buffer (a pattern behind several "inplace op has no
effect on non-contiguous tensor" bugs in extensions and early torch ops).

Region: Dropout, training, inplace=True, 0 < p < 1, non-contiguous input.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        if not (self.training and self.inplace) or self.p in (0.0, 1.0) or x.is_contiguous():
            return F.dropout(x, self.p, self.training, self.inplace)
        buf = x.contiguous()
        return F.dropout(buf, self.p, True, True)


def _check(cls):
    torch.manual_seed(0)
    base = torch.randn(64, 32) + 10
    x = base.t()
    before = x.clone()
    y = cls(0.5, inplace=True).train()(x)
    return bool(torch.equal(x, y)), bool(torch.equal(x, before))


def confirm():
    (pw, pu), (tw, tu) = _check(Dropout), _check(torch.nn.Dropout)
    return {"observable": (pw, pu) != (tw, tu),
            "detail": f"transposed (32,64) input, inplace=True, p=0.5: input holds the output probe {pw} vs torch {tw}; "
                      f"input unchanged probe {pu} vs torch {tu}"}


U.reexport(globals())
