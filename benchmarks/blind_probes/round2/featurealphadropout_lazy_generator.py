"""Blind probe: FeatureAlphaDropout drawing from a private generator seeded lazily from initial_seed().

Defect: at its first training call the layer creates a torch.Generator seeded with
torch.initial_seed() and draws every later channel mask from it. Each (n, c) channel is kept with
probability 1-p independently and every call draws a fresh mask, and the default generator is never
advanced; but torch.manual_seed(s) before a later call does not reproduce the mask of an existing
layer, and two layers first called after the same seed draw the SAME masks (perfectly correlated
dropout across layers).

Inspired by: "lazy RNG" implementations that create a per-module generator on first use from the
process seed (torch.initial_seed(), numpy's seed, or a framework's global key) -- the stream is then
decoupled from later reseeding and shared by every module created under one seed.

Region: FeatureAlphaDropout, training, reseeding between calls of one layer, or two such layers fed
after one seed; one layer's single call or successive calls look perfectly correct.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

ALPHA = 1.7580993408473766


class FeatureAlphaDropout(torch.nn.FeatureAlphaDropout):
    _gen = None

    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0) or x.numel() == 0:
            return super().forward(x)
        if x.dim() < 2:
            return super().forward(x)
        if self._gen is None:
            self._gen = torch.Generator()
            self._gen.manual_seed(torch.initial_seed())
        shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2)
        noise = torch.empty(shape, dtype=x.dtype).bernoulli_(1 - self.p, generator=self._gen)
        a = 1.0 / ((ALPHA * ALPHA * self.p + 1) * (1 - self.p)) ** 0.5
        b = noise.add(-1).mul_(ALPHA * a).add_(ALPHA * a * self.p)
        noise.mul_(a)
        return (x * noise).add_(b)


def _check(cls):
    x = torch.ones(16, 32, 3, 3)
    layer = cls(0.5).train()
    torch.manual_seed(21)
    a = layer(x)
    torch.manual_seed(21)
    b = layer(x)
    torch.manual_seed(22)
    l1, l2 = cls(0.5).train(), cls(0.5).train()
    c1, c2 = l1(x), l2(x)
    return bool(torch.equal(a, b)), float((c1 == c2).float().mean())


def confirm():
    pe, pc = _check(FeatureAlphaDropout)
    te, tc = _check(torch.nn.FeatureAlphaDropout)
    return {"observable": (not pe) and te,
            "detail": f"(16,32,3,3), p=0.5: reseeded same layer reproduces: probe {pe} vs torch {te}; two fresh layers "
                      f"after one seed agree on {pc:.3f} of outputs (probe) vs {tc:.3f} (torch)"}


U.reexport(globals())
