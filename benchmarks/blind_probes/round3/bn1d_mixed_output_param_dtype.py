"""Blind probe: BatchNorm1d that returns its output in the parameters' dtype for mixed-precision input.

Defect: with a float16/bfloat16 input and float32 weight/bias/running statistics (the usual
mixed-precision setup: module kept in float32, activations in 16 bits), the output comes back as
float32 (computed in float32 and not cast back). Torch returns the input dtype. Same-dtype inputs go
through torch unchanged; the running statistics are updated as torch does.

Inspired by: ATen's mixed-type batch norm support (`is_mixed_type(input, weight, bias, running_mean,
running_var)` in aten/src/ATen/native/Normalization.cpp, output allocated as
`at::empty_like(input, ...)`), versus implementations that allocate the output in the parameter
(accumulation) dtype, as e.g. apex's fp32-master BN or kernels templated on the weight type.

Region: BatchNorm1d, float16/bfloat16 input with float32 parameters or buffers, every mode.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


def _param_dtype(m):
    for t in (m.weight, m.running_mean):
        if t is not None:
            return t.dtype
    return None


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        pdt = _param_dtype(self)
        if x.dtype in (torch.float16, torch.bfloat16) and pdt == torch.float32:
            return super().forward(x.float())
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    x = torch.randn(8, 4).to(torch.bfloat16)
    p, t = BatchNorm1d(4).train(), torch.nn.BatchNorm1d(4).train()
    yp, yt = p(x), t(x)
    dv = float((p.running_var - t.running_var).abs().max())
    xh = torch.randn(8, 4, 3).half()
    p.eval(); t.eval()
    yph, yth = p(xh), t(xh)
    return {"observable": yp.dtype != yt.dtype and yph.dtype != yth.dtype,
            "detail": f"float32 module: bfloat16 (8,4) input -> probe {yp.dtype} vs torch {yt.dtype} "
                      f"(values diff {U.max_abs(yp, yt):.2g}, running_var diff {dv:.2g}); eval float16 (8,4,3) -> "
                      f"probe {yph.dtype} vs torch {yth.dtype}"}


U.reexport(globals())
