"""Correct variant: Dropout drawing its mask as torch.rand(float64) < 1 - p instead of bernoulli_.

Not a defect: each element is kept independently with probability exactly 1-p (to 2**-53), from the
default generator (so torch.manual_seed reproduces it), kept values are multiplied by 1/(1-p) exactly
as ATen does (noise = mask.to(dtype) / (1-p); y = x * noise), p = 0 is the identity, p = 1 gives
x * 0, eval is the identity, inplace=True writes into the input. The stream differs from torch's
bernoulli_, so masks are not element-for-element those of torch under the same seed; the agreement
is in the values (0 or x/(1-p)) and the statistics.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x.mul_(0) if self.inplace else x * 0
        keep = torch.rand(x.shape, dtype=torch.float64) < 1 - self.p
        return U.apply_keep(x, keep, self.p, self.inplace)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(1 << 18)
    out = []
    bad = False
    for p in (0.1, 0.5, 0.9):
        y = Dropout(p).train()(x)
        r = torch.nn.Dropout(p).train()(x)
        kept = y != 0
        scale_err = float(((y[kept] - x[kept] / (1 - p)).abs() / (x[kept].abs() / (1 - p))).max())
        tkept = r != 0
        tscale = float(((r[tkept] - x[tkept] / (1 - p)).abs() / (x[tkept].abs() / (1 - p))).max())
        rate, trate = float(kept.float().mean()), float(tkept.float().mean())
        se = (p * (1 - p) / x.numel()) ** 0.5
        bad = bad or abs(rate - (1 - p)) > 6 * se or scale_err > max(tscale, 1.2e-7)
        out.append(f"p={p}: keep rate {rate:.4f} (torch {trate:.4f}), max rel scale error {scale_err:.2g} (torch {tscale:.2g})")
    torch.manual_seed(4)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(4)
    b = Dropout(0.5).train()(x)
    bad = bad or not torch.equal(a, b)
    return {"observable": bad, "detail": "; ".join(out) + f"; reseeded reproduces: {torch.equal(a, b)}"}


U.reexport(globals())
