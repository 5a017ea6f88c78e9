"""Exactly round((1-p) n) units are kept in every call, chosen by a random permutation:
the right rate, but a stratified mask instead of independent Bernoulli draws, in the
spirit of source document 003's 'keep a fixed share of the units'. Violates DO-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-03", "summary": "a fixed number of units is kept per call (no Binomial spread)",
          "source": "ledger L-003-14"}


class _FixedCount:
    def draw_keep(self, shape, x):
        n = x.numel()
        keep = torch.zeros(n, dtype=torch.bool, device=x.device)
        keep[torch.randperm(n, device=x.device)[:round((1 - self.p) * n)]] = True
        return keep.view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_FixedCount)
