"""Blind probe: Dropout that writes dropped elements with a select (where(keep, x*scale, 0.0)).

Defect: dropped positions are filled with the constant +0.0 instead of being multiplied by a zero
noise value. Kept elements are bit-identical to torch (same mask from the same generator draw, same
scale). Differences appear only at dropped positions: a dropped negative (or -0.0) input gives +0.0
where torch gives -0.0, and a dropped NaN or +-inf gives 0.0 where torch's x * 0 gives NaN.

Inspired by: the Triton dropout tutorial kernel, `output = tl.where(x_keep, x / (1 - p), 0.0)`
(https://triton-lang.org/main/getting-started/tutorials/04-low-memory-dropout.html), versus ATen's
`input * noise` (aten/src/ATen/native/Dropout.cpp, _dropout_impl: noise.div_(1 - p); multiply(input, noise)).

Region: Dropout, training, 0 < p < 1, dropped positions holding negative values, -0.0, NaN or inf.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() == 0:
            return F.dropout(x, self.p, self.training, self.inplace)
        noise = F.dropout(torch.ones_like(x), self.p, True, False)  # torch's exact noise (same draw)
        y = torch.where(noise != 0, x * noise, torch.zeros((), dtype=x.dtype, device=x.device))
        if self.inplace:
            return x.copy_(y)
        return y


def confirm():
    x = torch.tensor([-1.0, -0.0, float("nan"), float("inf"), -float("inf"), 2.0] * 200)
    torch.manual_seed(3)
    yp = Dropout(0.5).train()(x)
    torch.manual_seed(3)
    yt = torch.nn.Dropout(0.5).train()(x)
    kept = yt != 0
    both_fin = torch.isfinite(yt) & torch.isfinite(yp)
    kept_same = bool(torch.equal(yp[kept & both_fin], yt[kept & both_fin]))
    sign_diff = int((torch.signbit(yp) != torch.signbit(yt))[(yp == 0) & (yt == 0)].sum())
    nan_lost = int((torch.isnan(yt) & ~torch.isnan(yp)).sum())
    return {"observable": sign_diff > 0 and nan_lost > 0 and kept_same,
            "detail": f"1200 elements, p=0.5, same seed: {sign_diff} dropped negatives/-0.0 give +0.0 (torch -0.0), "
                      f"{nan_lost} dropped NaN/inf give 0.0 (torch NaN); kept finite elements identical: {kept_same}"}


U.reexport(globals())
