"""The mask comes from numpy's global generator, as in the numpy dropout of source
document 002, so torch.manual_seed does not replay it. Violates DO-SEED-01."""
import numpy as np
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-SEED-01", "summary": "masks are drawn from numpy's RNG, not torch's seeded generator",
          "source": "plausible: a port of source document 002's numpy dropout (np.random)"}


class _NumpyDraws:
    def draw_keep(self, shape, x):
        return torch.from_numpy(np.random.random_sample(tuple(shape)) >= self.p).to(x.device)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_NumpyDraws)
