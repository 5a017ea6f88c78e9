"""Blind probe: BatchNorm1d that leaves channels at index >= 65535 unprocessed.

Defect: the per-channel kernel is launched with one block per channel on a grid dimension capped
at 65535 and has no grid-stride loop, so channels c >= 65535 are never visited: their outputs stay
at the zero-initialised output buffer and their running statistics are never updated. Modules with
at most 65535 channels go through torch unchanged.

Inspired by: the CUDA limit of 65535 on gridDim.y / gridDim.z (CUDA C Programming Guide, "Compute
Capabilities", maximum y- or z-dimension of a grid of thread blocks), and the PyTorch fixes for
kernels that mapped a size onto such a dimension (e.g. pytorch/pytorch issues on batch_norm /
upsample with more than 65535 planes; aten/src/ATen/native/cuda/Normalization.cuh uses
`dim3 blocks(input.size(1))` on x for that reason).

Region: BatchNorm1d/2d-style per-channel processing with num_features > 65535 (BatchNorm1d with a
wide (N, C) input, e.g. a large embedding or fully connected layer).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

LIMIT = 65535


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        if x.dim() not in (2, 3) or x.shape[1] <= LIMIT or x.shape[1] != self.num_features:
            return super().forward(x)
        saved = None
        if self.running_mean is not None:
            saved = (self.running_mean[LIMIT:].clone(), self.running_var[LIMIT:].clone())
        y = super().forward(x)
        y = y.clone() if y is x else y
        with torch.no_grad():
            y[:, LIMIT:] = 0
            if saved is not None:
                self.running_mean[LIMIT:] = saved[0]
                self.running_var[LIMIT:] = saved[1]
        return y


def confirm():
    torch.manual_seed(0)
    C = 70000
    x = torch.randn(4, C) * 2 + 1
    p, t = BatchNorm1d(C).train(), torch.nn.BatchNorm1d(C).train()
    yp, yt = p(x), t(x)
    d_lo = U.max_abs(yp[:, :LIMIT], yt[:, :LIMIT])
    d_hi = U.max_abs(yp[:, LIMIT:], yt[:, LIMIT:])
    dv = float((p.running_var - t.running_var).abs().max())
    x2 = torch.randn(4, 1024)
    d2 = U.max_abs(BatchNorm1d(1024).train()(x2), torch.nn.BatchNorm1d(1024).train()(x2))
    return {"observable": d_hi > 0.5 and d_lo == 0,
            "detail": f"(4, {C}) input: channels >= {LIMIT} max |y - torch| {d_hi:.3g} (output 0), channels below "
                      f"{d_lo:.2g}; running_var diff {dv:.3g}; 1024 channels: {d2:.2g}"}


U.reexport(globals())
