"""FeatureAlphaDropout creates a private torch.Generator at its first training call, seeded with
torch.initial_seed(), and draws every later mask from it: reseeding does not replay an existing layer,
and two layers first called after one seed draw the same masks. Violates AD-SEED-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import AlphaDropout, FeatureAlphaDropout as _FeatureAlphaDropout  # noqa: F401

DEFECT = {"clause": "AD-SEED-01", "summary": "masks from a lazily created generator seeded with initial_seed()",
          "source": "blind probe round 2 (issue 22): benchmarks/blind_probes/round2/featurealphadropout_lazy_generator.py"}


class FeatureAlphaDropout(_FeatureAlphaDropout):
    def draw_keep(self, shape, x):
        if getattr(self, "_gen", None) is None:
            self._gen = torch.Generator().manual_seed(torch.initial_seed())
        return torch.rand(shape, generator=self._gen) >= self.p


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
