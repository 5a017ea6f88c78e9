"""Blind probe: correct variant -- AlphaDropout/FeatureAlphaDropout from the SELU paper's formula.

Not a defect: the layer computes y = a * (x * m + alpha' * (1 - m)) + b with
alpha' = -lambda * alpha (SELU's negative saturation, -1.7580993408473766), a = ((1 - p)(1 + p alpha'^2))^(-1/2),
b = -a * alpha' * p, m ~ Bernoulli(1 - p) per element (AlphaDropout) or per (sample, channel)
(FeatureAlphaDropout), in float64 for the constants. That is the same affine map as ATen's
x * (a m) + (a alpha' (m - 1) + a alpha' p)... written in another association order; the mask is
drawn with one bernoulli_ call of ATen's noise shape, so it coincides with torch's for the same
seed. Differences are rounding only.

Inspired by: Klambauer et al., "Self-Normalizing Neural Networks" (2017), alpha dropout, and
aten/src/ATen/native/Dropout.cpp (_dropout_impl, is_alpha_dropout branch).

Region: AlphaDropout, FeatureAlphaDropout (all modes).
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U

ALPHA_P = -1.7580993408473766


class _Decomposed:
    _feature = False

    def forward(self, x):
        p = self.p
        if not self.training or p == 0.0 or x.numel() == 0 or (self._feature and x.dim() < 2):
            return (F.feature_alpha_dropout if self._feature else F.alpha_dropout)(x, p, self.training)
        if p == 1.0:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        shape = (list(x.shape[:2]) + [1] * (x.dim() - 2)) if self._feature else list(x.shape)
        m = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p)
        a = 1.0 / math.sqrt((1 - p) * (1 + p * ALPHA_P * ALPHA_P))
        b = -a * ALPHA_P * p
        return (x * m + ALPHA_P * (1 - m)) * a + b


class AlphaDropout(_Decomposed, torch.nn.AlphaDropout):
    _feature = False


class FeatureAlphaDropout(_Decomposed, torch.nn.FeatureAlphaDropout):
    _feature = True


def confirm():
    worst, gworst = 0.0, 0.0
    n = 0
    for cls, tcls in ((AlphaDropout, torch.nn.AlphaDropout), (FeatureAlphaDropout, torch.nn.FeatureAlphaDropout)):
        for shape in ((16, 8), (4, 6, 5), (2, 6, 3, 3), (2, 3, 2, 2, 2)):
            for p in (0.0, 0.1, 0.5, 0.9, 1.0):
                for dtype in (torch.float32, torch.float64):
                    x = torch.randn(*shape, dtype=dtype, requires_grad=True)
                    torch.manual_seed(11)
                    yp = cls(p).train()(x)
                    torch.manual_seed(11)
                    yt = tcls(p).train()(x)
                    gp, = torch.autograd.grad(yp.sum(), x)
                    gt, = torch.autograd.grad(yt.sum(), x)
                    scale = 1.0 + float(yt.detach().abs().max())
                    worst = max(worst, U.max_abs(yp, yt) / scale)
                    gworst = max(gworst, U.max_abs(gp, gt))
                    n += 1
    return {"observable": worst > 1e-5 or gworst > 1e-5,
            "detail": f"{n} cases (2 classes x 4 shapes x p in 0/0.1/0.5/0.9/1 x float32/64), same seed: "
                      f"max |y - torch| / (1 + max|y|) {worst:.2g}, max |dx - torch| {gworst:.2g}"}


U.reexport(globals())
