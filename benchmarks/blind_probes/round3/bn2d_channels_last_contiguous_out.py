"""Blind probe: BatchNorm2d that returns a contiguous (NCHW) output for a channels_last input.

Defect: the layer computes in the input's layout but returns `out.contiguous()`, i.e. the output
of a channels_last input is in the default NCHW memory format (values are torch's). Torch's batch
norm keeps the suggested memory format of its input (the output is channels_last), so the
departure is in strides only: downstream channels_last kernels get a layout conversion, and code
that checks `is_contiguous(memory_format=torch.channels_last)` or the output strides sees it.

Inspired by: extension kernels that call `.contiguous()` on inputs/outputs to simplify indexing,
versus ATen's batch_norm_cpu allocating its output with
`at::empty_like(self, self.suggest_memory_format())` (aten/src/ATen/native/Normalization.cpp) and
the channels_last BN kernels (batch_norm_cpu_channels_last_impl in cpu/batch_norm_kernel.cpp).

Region: BatchNorm2d, input in channels_last memory format (C > 1 and H*W > 1), every mode.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        y = super().forward(x)
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            y = y.contiguous()
        return y


def confirm():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 5, 5).to(memory_format=torch.channels_last)
    yp = BatchNorm2d(8).train()(x)
    yt = torch.nn.BatchNorm2d(8).train()(x)
    d = U.max_abs(yp, yt)
    cl_p = yp.is_contiguous(memory_format=torch.channels_last)
    cl_t = yt.is_contiguous(memory_format=torch.channels_last)
    return {"observable": cl_t and not cl_p,
            "detail": f"channels_last (4,8,5,5): output strides probe {yp.stride()} vs torch {yt.stride()} "
                      f"(channels_last: probe {cl_p}, torch {cl_t}); values max diff {d:.2g}"}


U.reexport(globals())
