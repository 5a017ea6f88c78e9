"""Blind probe: BatchNorm2d that accepts a 3-D (C, H, W) input as an unbatched image.

Defect: the input-dimension check allows 3-D input and treats it as one sample (unsqueeze(0), then
squeeze back), like the unbatched support of InstanceNorm2d/Conv2d. Torch's BatchNorm2d raises
ValueError("expected 4D input (got 3D input)"). 4-D inputs go through torch unchanged.

Inspired by: the unbatched-input support that torch added to many layers (Conv2d, InstanceNorm2d,
Dropout2d accept (C, H, W); tracked in pytorch/pytorch issue #60585 "Support unbatched inputs")
extended by analogy to BatchNorm, whose `_check_input_dim` stays strict
(torch/nn/modules/batchnorm.py, BatchNorm2d._check_input_dim).

Region: BatchNorm2d with a 3-D input (every mode).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def _check_input_dim(self, input):
        if input.dim() not in (3, 4):
            raise ValueError(f"expected 3D or 4D input (got {input.dim()}D input)")

    def forward(self, x):
        if x.dim() == 3:
            return super().forward(x.unsqueeze(0)).squeeze(0)
        return super().forward(x)


def _try(m, x):
    try:
        return tuple(m(x).shape), None
    except (ValueError, RuntimeError) as e:
        return None, f"{type(e).__name__}: {e}"


def confirm():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 4)
    sp, ep = _try(BatchNorm2d(3).train(), x)
    st, et = _try(torch.nn.BatchNorm2d(3).train(), x)
    x4 = torch.randn(2, 3, 4, 4)
    d = U.max_abs(BatchNorm2d(3).train()(x4), torch.nn.BatchNorm2d(3).train()(x4))
    return {"observable": ep is None and et is not None,
            "detail": f"(3,4,4) input: probe returns shape {sp}, torch raises '{et}'; 4-D diff {d:.2g}"}


U.reexport(globals())
