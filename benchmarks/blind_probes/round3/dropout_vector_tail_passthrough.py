"""Blind probe: Dropout whose scalar tail loop copies the input instead of applying the mask.

Defect: the kernel processes elements in 8-wide vectors and the scalar remainder loop (the last
numel % 8 elements, in memory order) copies x unchanged: those elements are neither dropped nor
scaled by 1/(1-p). Tensors whose element count is a multiple of 8 go through torch unchanged; the
mask and RNG draw are torch's.

Inspired by: vectorised elementwise kernels split into a Vectorized<scalar_t> main loop and a scalar
tail (aten/src/ATen/cpu/vec, at::vec::map; aten/src/ATen/native/cuda/MemoryAccess.cuh and the
`vectorized_elementwise_kernel` / `unrolled_elementwise_kernel` split in CUDALoops.cuh), where the
remainder path is written separately and can miss a step.

Region: Dropout, training, 0 < p < 1, numel % 8 != 0: the last numel % 8 elements in memory order.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U

VEC = 8


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        r = x.numel() % VEC
        if not self.training or self.p in (0.0, 1.0) or r == 0 or not x.is_contiguous():
            return F.dropout(x, self.p, self.training, self.inplace)
        tail = x.reshape(-1)[-r:].clone()
        y = F.dropout(x, self.p, True, self.inplace)
        y.view(-1)[-r:] = tail
        return y


def confirm():
    torch.manual_seed(0)
    n = 1003
    x = torch.randn(n)
    torch.manual_seed(1)
    yp = Dropout(0.5).train()(x)
    torch.manual_seed(1)
    yt = torch.nn.Dropout(0.5).train()(x)
    r = n % VEC
    tail_unchanged = bool(torch.equal(yp[-r:], x[-r:]))
    d = U.max_abs(yp, yt)
    head_same = bool(torch.equal(yp[:-r], yt[:-r]))
    # torch's tail entries are all either 0 or 2x; count tail entries equal to x over many seeds
    hits = 0
    for s in range(20):
        torch.manual_seed(s)
        yp = Dropout(0.5).train()(x)
        hits += int((yp[-r:] == x[-r:]).sum())
    return {"observable": tail_unchanged and head_same and d > 0,
            "detail": f"numel {n}, p=0.5: last {r} outputs equal the input (torch: 0 or 2x), max |y - torch| {d:.3g}; "
                      f"first {n - r} identical; over 20 seeds {hits}/{20 * r} tail outputs == x"}


U.reexport(globals())
