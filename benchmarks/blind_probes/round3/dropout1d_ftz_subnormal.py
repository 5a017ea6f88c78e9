"""Blind probe: Dropout1d running with flush-to-zero / denormals-are-zero for float32.

Defect: float32 subnormal inputs are read as zero and subnormal results are flushed to (signed) zero,
as a kernel compiled with fast-math (FTZ/DAZ) does. Normal inputs, NaN and inf, and other dtypes go
through torch unchanged; the mask and its RNG draw are torch's.

Inspired by: nvcc `--use_fast_math` / `-ftz=true` (flush f32 denormals in arithmetic instructions,
https://docs.nvidia.com/cuda/cuda-compiler-driver-nvcc/#ftz-true-false-ftz) and x86 MXCSR FTZ/DAZ as
set by `torch.set_flush_denormal(True)` (https://pytorch.org/docs/stable/generated/torch.set_flush_denormal.html).

Region: Dropout1d, training, float32, |x| or |x * scale| below 2**-126 (subnormal), kept channels.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U

TINY = torch.finfo(torch.float32).tiny


class Dropout1d(torch.nn.Dropout1d):
    def forward(self, x):
        if not self.training or x.dtype != torch.float32 or x.numel() == 0:
            return F.dropout1d(x, self.p, self.training, self.inplace)
        sub_in = (x.abs() < TINY) & (x != 0)
        y = F.dropout1d(x, self.p, True, False)
        flush = sub_in | ((y.abs() < TINY) & (y != 0))
        y = torch.where(flush, y * 0, y)
        if self.inplace:
            return x.copy_(y)
        return y


def confirm():
    x = torch.full((8, 16, 32), 3e-39)
    x[:, :, ::2] = 1.0
    torch.manual_seed(0)
    yp = Dropout1d(0.5).train()(x)
    torch.manual_seed(0)
    yt = torch.nn.Dropout1d(0.5).train()(x)
    sub = x < 1
    nz_t = int((yt[sub] != 0).sum())
    nz_p = int((yp[sub] != 0).sum())
    normal_same = bool(torch.equal(yp[~sub], yt[~sub]))
    return {"observable": nz_t > 0 and nz_p == 0 and normal_same,
            "detail": f"(8,16,32) float32, half the entries 3e-39 (subnormal), p=0.5, same seed: torch keeps {nz_t} "
                      f"subnormal-input entries non-zero (6e-39), probe {nz_p}; normal entries identical: {normal_same}"}


U.reexport(globals())
