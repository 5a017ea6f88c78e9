"""Blind probe: Dropout1d drawing its masks from a private generator seeded at construction.

Defect: the layer owns a torch.Generator seeded from the default generator when it is constructed
and draws every mask from it. Masks are iid Bernoulli(1-p) per (n, c), fresh on every call, and a
layer constructed right after torch.manual_seed(s) is reproducible; but reseeding the default
generator does not reproduce the mask of an existing layer (torch.manual_seed(s); y1 = layer(x);
torch.manual_seed(s); y2 = layer(x) gives y1 != y2), and a training call leaves the default generator
untouched.

Inspired by: layers ported from functional frameworks (JAX/flax style explicit keys) or "deterministic
dropout" wrappers that keep their own generator (seeded once) so that dropout does not perturb the
global stream; torch's contract is that masks come from the default generator.

Region: Dropout1d, training, the same layer called again after torch.manual_seed with the same seed
(any shape); invisible to any statistical test of one call or of successive calls.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class Dropout1d(torch.nn.Dropout1d):
    def __init__(self, p=0.5, inplace=False):
        super().__init__(p, inplace)
        self._gen = torch.Generator()
        self._gen.manual_seed(int(torch.randint(0, 2 ** 62, ())))

    def forward(self, x):
        if not self.training or self.p in (0.0, 1.0):
            return super().forward(x)
        if x.dim() not in (2, 3):
            raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {x.dim()}D input")
        shape = x.shape[:-1] + (1,)
        keep = torch.rand(shape, dtype=torch.float64, generator=self._gen) < 1 - self.p
        return U.apply_keep(x, keep, self.p, self.inplace)


def _reseeded(layer):
    x = torch.ones(8, 64, 5)
    torch.manual_seed(11)
    a = layer(x)
    torch.manual_seed(11)
    b = layer(x)
    return bool(torch.equal(a, b)), float(((a != 0) != (b != 0)).float().mean())


def confirm():
    torch.manual_seed(0)
    pe, pd = _reseeded(Dropout1d(0.5).train())
    te, td = _reseeded(torch.nn.Dropout1d(0.5).train())
    return {"observable": (not pe) and te,
            "detail": f"same layer, manual_seed(11) before each of two calls on (8,64,5), p=0.5: outputs equal "
                      f"probe {pe} (fraction of differing mask entries {pd:.3f}) vs torch {te} ({td:.3f})"}


U.reexport(globals())
