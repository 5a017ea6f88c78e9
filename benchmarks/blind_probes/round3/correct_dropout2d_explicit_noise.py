"""Blind probe: correct variant -- Dropout1d/2d/3d written out as an explicit broadcast noise tensor.

Not a defect: the channel mask is built by hand exactly as the docs describe -- a Bernoulli(1 - p)
tensor of shape (N, C, 1, ...) (unbatched inputs of Dropout1d/3d get a leading batch of 1; a 3-D
input to Dropout2d is left to torch, which reads it as (N, C, L)), divided by 1 - p, and multiplied
into the input by broadcasting (in place with mul_ when inplace=True); p == 0, p == 1,
eval mode and empty inputs are handled as torch does. The noise is drawn with one bernoulli_ call on
the default generator with the same shape as ATen's make_feature_noise, so the masks even coincide
with torch's for the same seed; outputs agree to the bit (signed zeros and NaN propagation included).

Inspired by: aten/src/ATen/native/Dropout.cpp (make_feature_noise, _dropout_impl) and the
torch.nn.Dropout2d documentation.

Region: Dropout1d, Dropout2d, Dropout3d (all modes).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class _Explicit:
    _batched_dim = None
    _unbatched_ok = True
    _fn = None

    def forward(self, x):
        p = self.p
        dims = (self._batched_dim - 1, self._batched_dim) if self._unbatched_ok else (self._batched_dim,)
        if not self.training or p == 0.0 or x.numel() == 0 or x.dim() not in dims:
            return type(self)._fn(x, p, self.training, self.inplace)
        unbatched = x.dim() == self._batched_dim - 1
        xb = x.unsqueeze(0) if unbatched else x
        if p == 1.0:
            noise = torch.zeros((), dtype=x.dtype, device=x.device)
        else:
            shape = list(xb.shape[:2]) + [1] * (xb.dim() - 2)
            noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p).div_(1 - p)
            if unbatched:
                noise = noise.squeeze(0)
        if self.inplace:
            return x.mul_(noise)
        return x * noise


class Dropout1d(_Explicit, torch.nn.Dropout1d):
    _batched_dim = 3
    _fn = staticmethod(F.dropout1d)


class Dropout2d(_Explicit, torch.nn.Dropout2d):
    _batched_dim = 4
    _unbatched_ok = False  # torch's dropout2d reads a 3-D input as (N, C, L) (with a warning): left to torch
    _fn = staticmethod(F.dropout2d)


class Dropout3d(_Explicit, torch.nn.Dropout3d):
    _batched_dim = 5
    _fn = staticmethod(F.dropout3d)


def _diff(a, b):
    """max |a - b| counting equal values (infinities included) and NaN-vs-NaN as 0."""
    a, b = a.detach().double(), b.detach().double()
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    d = torch.where(same, torch.zeros_like(a), (a - b).abs())
    return float(torch.nan_to_num(d, nan=float("inf")).max()) if d.numel() else 0.0


def confirm():
    worst, rows = 0.0, []
    cases = [(Dropout1d, torch.nn.Dropout1d, (8, 6, 5)), (Dropout1d, torch.nn.Dropout1d, (6, 5)),
             (Dropout2d, torch.nn.Dropout2d, (8, 6, 3, 3)), (Dropout2d, torch.nn.Dropout2d, (2, 6, 1, 9)),
             (Dropout3d, torch.nn.Dropout3d, (4, 6, 2, 3, 3)), (Dropout3d, torch.nn.Dropout3d, (6, 2, 3, 3))]
    for cls, tcls, shape in cases:
        for p in (0.0, 0.3, 1.0):
            for inplace in (False, True):
                x = torch.randn(*shape)
                x.view(-1)[:3] = torch.tensor([float("nan"), -0.0, float("inf")])
                torch.manual_seed(5)
                yp = cls(p, inplace=inplace).train()(x.clone())
                torch.manual_seed(5)
                yt = tcls(p, inplace=inplace).train()(x.clone())
                d = _diff(yp, yt)
                sign = int((torch.signbit(yp) != torch.signbit(yt))[~torch.isnan(yt)].sum())
                worst = max(worst, d, float(sign))
        rows.append(f"{cls.__name__}{shape}")
    return {"observable": worst > 0,
            "detail": f"max |y - torch| (and signed-zero mismatches) over {len(cases) * 6} cases "
                      f"({', '.join(rows)}; p in 0, 0.3, 1; inplace both; NaN/-0.0/inf entries): {worst:.2g}"}


U.reexport(globals())
