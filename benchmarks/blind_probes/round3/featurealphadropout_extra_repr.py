"""Blind probe: FeatureAlphaDropout whose repr omits `inplace` (extra_repr "p=0.5").

Defect: extra_repr returns only `p={p}`; torch's _DropoutNd.extra_repr is "p={p}, inplace={inplace}",
so repr()/str() of the module (and of any model containing it) differ from torch. Behaviour is
torch's.

Inspired by: re-implemented modules overriding extra_repr with a hand-written string
(torch/nn/modules/dropout.py, _DropoutNd.extra_repr: `return f"p={self.p}, inplace={self.inplace}"`).

Region: FeatureAlphaDropout, module API: repr / extra_repr.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class FeatureAlphaDropout(torch.nn.FeatureAlphaDropout):
    def extra_repr(self):
        return f"p={self.p}"


def confirm():
    rp, rt = repr(FeatureAlphaDropout(0.2, inplace=True)), repr(torch.nn.FeatureAlphaDropout(0.2, inplace=True))
    return {"observable": rp != rt, "detail": f"repr probe {rp!r} vs torch {rt!r}"}


U.reexport(globals())
