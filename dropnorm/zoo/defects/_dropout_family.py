"""Correct from-scratch Dropout1d, Dropout3d, AlphaDropout and FeatureAlphaDropout (issue 15), built on
dropnorm/zoo/scratch.py's _DropoutNd, for the defects of the D2-RANK-01 and AD-* clauses: each defect
module subclasses one of these with one step changed. A helper module (leading underscore), not a
defect; audited as a whole with

    dropnorm audit --impl torch-module:dropnorm.zoo.defects._dropout_family --layer dropout2d --layer alphadropout

and passes (every D2-* and AD-* clause on Dropout1d, Dropout3d, AlphaDropout, FeatureAlphaDropout).
"""
from __future__ import annotations

import math

import torch

from dropnorm.zoo import scratch
from dropnorm.zoo.build import layers

ALPHA_PRIME = -1.7580993408473766  # SELU's negative saturation -lambda * alpha (spec/clauses.toml, AD-*)


class _ChannelDropout(scratch._DropoutNd):
    """One draw per (n, c) of the batched rank, per c of the no-batch rank (D2-RANK-01)."""

    channelwise = True
    batched_rank = 0
    unbatched_rank = 0

    def mask_shape(self, x):
        if x.dim() == self.batched_rank:
            return x.shape[:2] + (1,) * (x.dim() - 2)
        if x.dim() == self.unbatched_rank:
            return x.shape[:1] + (1,) * (x.dim() - 1)
        raise ValueError(f"{type(self).__name__} takes input of rank {self.batched_rank} (N, C, ...) or "
                         f"{self.unbatched_rank} (C, ...), got shape {tuple(x.shape)}")


class Dropout1d(_ChannelDropout):
    batched_rank, unbatched_rank = 3, 2


class Dropout3d(_ChannelDropout):
    batched_rank, unbatched_rank = 5, 4


def alpha_constants(p: float) -> tuple[float, float]:
    """a = (q (1 + alpha'^2 p))^(-1/2), b = -a alpha' p (AD-TRAIN-01)."""
    a = 1.0 / math.sqrt((1.0 - p) * (1.0 + ALPHA_PRIME * ALPHA_PRIME * p))
    return a, -a * ALPHA_PRIME * p


class AlphaDropout(scratch._DropoutNd):
    """Kept units a x + b, dropped units a alpha' + b, in the input dtype; p = 1 gives zeros (AD-EDGE-01)."""

    def scale(self, x):
        return alpha_constants(self.p)[0]

    def apply(self, x, keep, a):
        _, b = alpha_constants(self.p)
        t = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
        return torch.where(keep, x * t(a) + t(b), t(a * ALPHA_PRIME + b))


class FeatureAlphaDropout(AlphaDropout):
    channelwise = True  # one draw per (n, c) of (N, C, ...)

    def mask_shape(self, x):
        if x.dim() == 4:  # the documented no-batch (C, D, H, W): one draw per channel (AD-TRAIN-01 no-batch-channel)
            return x.shape[:1] + (1,) * 3
        return super().mask_shape(x)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
