"""Dropout1d draws its masks from a private torch.Generator seeded (from the default generator) when the
layer is constructed: masks are fresh and Bernoulli(1-p), but torch.manual_seed does not replay an existing
layer's masks. Violates D2-SEED-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import Dropout1d as _Dropout1d, Dropout3d  # noqa: F401

DEFECT = {"clause": "D2-SEED-01", "summary": "masks from a private generator seeded at construction",
          "source": "blind probe round 2 (issue 22): benchmarks/blind_probes/round2/dropout1d_private_generator.py"}


class Dropout1d(_Dropout1d):
    def draw_keep(self, shape, x):
        if getattr(self, "_gen", None) is None:
            self._gen = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, ())))
        return torch.rand(shape, generator=self._gen) >= self.p


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
