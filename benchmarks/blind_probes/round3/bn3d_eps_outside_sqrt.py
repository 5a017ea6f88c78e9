"""Blind probe: BatchNorm3d that divides by sqrt(var) + eps instead of sqrt(var + eps).

Defect: the normaliser is 1 / (sqrt(var) + eps) (batch variance in training, running variance in
eval). Statistics and running updates are torch's. For unit-scale data the two agree to ~eps/2
relative (5e-6 at eps=1e-5), so ordinary inputs pass; for small-scale inputs (std comparable to or
below sqrt(eps) ~ 3e-3) the output is several times too large, and a constant channel (var = 0)
divides by eps instead of sqrt(eps).

Inspired by: hand-written normalisation layers that add epsilon to the standard deviation (the
`(x - mean) / (std + eps)` form, e.g. the LayerNorm in the Annotated Transformer,
http://nlp.seas.harvard.edu/annotated-transformer/), versus torch.nn.BatchNorm's documented
y = (x - E[x]) / sqrt(Var[x] + eps) (https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm3d.html).

Region: BatchNorm3d, every mode, visible for per-channel standard deviations of order sqrt(eps) or
below (tiny-magnitude inputs), or with large eps.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch

import blindprobe_util as U
import _r3util as R


def inv_std_plus_eps(var, eps):
    return 1.0 / (torch.sqrt(var) + eps)


class BatchNorm3d(torch.nn.BatchNorm3d):
    def forward(self, x):
        if x.dim() == 5 and x.numel():
            return R.bn_forward(self, x, inv_fn=inv_std_plus_eps)
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3, 4, 4) * 1e-3
    p, t = BatchNorm3d(2).train(), torch.nn.BatchNorm3d(2).train()
    d = U.max_abs(p(x), t(x))
    dv = float((p.running_var - t.running_var).abs().max())
    x1 = torch.randn(4, 2, 3, 4, 4)
    d1 = U.max_abs(BatchNorm3d(2).train()(x1), torch.nn.BatchNorm3d(2).train()(x1))
    p.eval(); t.eval()
    de = U.max_abs(p(x1 * 1e-3), t(x1 * 1e-3))
    return {"observable": d > 0.5,
            "detail": f"std 1e-3 input (4,2,3,4,4): training max |y - torch| {d:.3g} (running_var diff {dv:.2g}); "
                      f"eval {de:.3g}; unit-scale input: {d1:.2g}"}


U.reexport(globals())
