"""Dropout computed with flush-to-zero / denormals-are-zero (a kernel built with fast-math, or
torch.set_flush_denormal(True) left on): kept subnormal inputs come out as zero instead of x/(1-p).
Normal inputs are exact. Violates DO-TRAIN-01 (round-3 blind probe dropout1d_ftz_subnormal escaped: no
input was subnormal)."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-01", "summary": "kept subnormal inputs flushed to zero (FTZ/DAZ)",
          "source": "blind probe round 3 (issue 22): dropout1d_ftz_subnormal; nvcc -ftz=true, torch.set_flush_denormal"}


class _FlushToZero:
    def apply(self, x, keep, scale):
        tiny = torch.finfo(x.dtype).tiny
        x = torch.where(x.abs() < tiny, torch.zeros((), dtype=x.dtype), x)
        return super().apply(x, keep, scale)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_FlushToZero)
