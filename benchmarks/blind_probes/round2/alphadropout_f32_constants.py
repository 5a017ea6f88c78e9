"""Blind probe: AlphaDropout computing its affine constants in float32 whatever the input dtype.

Defect: a = ((1-p)(1 + p alpha'^2))^(-1/2) and the dropped-unit offset alpha' a (p - 1 + 1{kept}) are
computed in float32 arithmetic and then applied to the input in its own dtype. The mask, its
distribution and the structure (kept -> a x + b, dropped -> a alpha' + b) are right; float32,
float16 and bfloat16 outputs are unchanged (their constants are rounded to float32 or coarser
anyway); float64 outputs are off by about 1e-8 relative, 1e8 times float64's rounding.

Inspired by: kernels that compute their scalar parameters as `float` (accscalar_t hard-coded to
float, or constants precomputed on the host in single precision) for every scalar_t, double
included -- the float64 path then carries float32-accurate constants.

Region: AlphaDropout, training, 0 < p < 1, float64 input only; needs a check of a and b to better
than ~1e-9 relative.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

ALPHA = 1.7580993408473766


def _constants_f32(p):
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    pt, al = t(p), t(ALPHA)
    a = 1 / torch.sqrt((al * al * pt + 1) * (1 - pt))
    return float(a), float(al * a), float(al * a * pt)


class AlphaDropout(torch.nn.AlphaDropout):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() == 0:
            return super().forward(x)
        noise = torch.empty_like(x).bernoulli_(1 - self.p)
        a, alpha_a, alpha_a_p = _constants_f32(self.p)
        b = noise.add(-1).mul_(alpha_a).add_(alpha_a_p)
        noise.mul_(a)
        return (x * noise).add_(b)


def confirm():
    out, worst64, worst32 = [], 0.0, 0.0
    for dt in (torch.float64, torch.float32):
        torch.manual_seed(9)
        x = torch.randn(10000, dtype=dt)
        torch.manual_seed(1)
        y = AlphaDropout(0.3).train()(x)
        torch.manual_seed(1)
        r = torch.nn.AlphaDropout(0.3).train()(x)
        same_mask = bool(torch.equal(y > -1.0, r > -1.0))
        # error relative to the size of the terms a*x and b (the result itself may cancel to ~0)
        scale = (x.double().abs() * 1.2 + 1.2).clamp_min(1.0)
        rel = float(((y.double() - r.double()).abs() / scale).max())
        if dt == torch.float64:
            worst64 = rel
        else:
            worst32 = rel
        out.append(f"{dt}: max |difference| / (|a x| + |b|) {rel:.2e} (masks identical: {same_mask})")
    return {"observable": worst64 > 1e-12,
            "detail": "p=0.3, 10000 N(0,1) values, same seed: " + "; ".join(out)}


U.reexport(globals())
