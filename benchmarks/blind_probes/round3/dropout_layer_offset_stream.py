"""Blind probe: Dropout whose random stream is offset by a per-instance layer index.

Defect: each module instance gets a process-wide layer index L at construction (0, 1, 2, ...); its
mask is the mask torch would draw, read from the generator's stream at an offset of L * 1031
elements (wrapping around the tensor), i.e. a per-layer shift of the Philox subsequence that the
generator state does not account for. A given instance is reproducible under manual_seed and its
keep rate and independence across calls are right, and the first instance created in a process is
bit-identical to torch; but two instances (or a re-created module) under the same seed give
different masks, while torch's mask depends on the generator state only.

Inspired by: per-layer RNG offsets/seeds used to decorrelate dropout across layers (Megatron-LM's
`CudaRNGStatesTracker` / model-parallel seeds, https://github.com/NVIDIA/Megatron-LM
megatron/core/tensor_parallel/random.py; fused attention kernels taking a philox (seed, offset) pair
per call), versus ATen's dropout which draws from the default generator only
(aten/src/ATen/native/Dropout.cpp, bernoulli_ on the default CPU/CUDA generator).

Region: Dropout, training, 0 < p < 1, any instance other than the first one created in the process
(numel > 1031 for a visible shift at every element; smaller tensors wrap the shift).
"""
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U

_layers = itertools.count()
STRIDE = 1031


class Dropout(torch.nn.Dropout):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._layer_index = next(_layers)

    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() == 0 or self._layer_index == 0:
            return F.dropout(x, self.p, self.training, self.inplace)
        noise = F.dropout(torch.ones_like(x), self.p, True, False).contiguous().view(-1)
        noise = torch.roll(noise, -(self._layer_index * STRIDE) % noise.numel()).view(x.shape)
        return U.apply_keep(x, noise != 0, self.p, self.inplace)


def _two_instances(cls):
    x = torch.ones(4096)
    a, b = cls(0.5).train(), cls(0.5).train()
    torch.manual_seed(7)
    ma = a(x) != 0
    torch.manual_seed(7)
    mb = b(x) != 0
    torch.manual_seed(7)
    ma2 = a(x) != 0
    return float((ma == mb).float().mean()), bool(torch.equal(ma, ma2)), float(ma.float().mean())


def confirm():
    Dropout(0.5)  # make sure the instances below are not the first one
    pa, prep, pkeep = _two_instances(Dropout)
    ta, trep, tkeep = _two_instances(torch.nn.Dropout)
    return {"observable": pa < 0.6 and ta == 1.0 and prep,
            "detail": f"two instances, same seed, 4096 elements, p=0.5: mask agreement probe {pa:.3f} vs torch {ta:.3f}; "
                      f"same instance reseeded reproduces: probe {prep}, torch {trep}; keep rate {pkeep:.3f} vs {tkeep:.3f}"}


U.reexport(globals())
