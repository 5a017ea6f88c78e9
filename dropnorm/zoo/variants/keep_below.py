"""Masks drawn as torch.rand(shape) < 1 - p: the same Bernoulli(1-p) distribution as
scratch's rand >= p and torch's bernoulli_, but a different mask for the same random
numbers. The suite must not depend on one random stream."""
import torch

from dropnorm.zoo.build import layers

VARIANT = {"layers": ["dropout", "dropout2d"], "summary": "keep where rand < 1 - p (a different draw)"}


class _KeepBelow:
    def draw_keep(self, shape, x):
        return torch.rand(shape, device=x.device) < 1.0 - self.p


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_KeepBelow, dropout2d=_KeepBelow)
