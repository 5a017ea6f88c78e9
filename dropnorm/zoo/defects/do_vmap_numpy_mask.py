"""The keep mask is drawn with numpy (seeded from torch's initial seed and a call counter) of the shape the layer sees: under
torch.func.vmap that is one input's shape, so randomness='error' does not raise (no torch random operation
runs) and every input of the batch gets the same mask, also with randomness='different'. Violates DO-VMAP-01."""
import numpy as np
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-VMAP-01", "summary": "a numpy-drawn mask escapes vmap's randomness modes",
          "source": "plausible: masks drawn outside the framework's random operations (issue 24)"}


class _NumpyMask:
    def draw_keep(self, shape, x):
        self._draws = getattr(self, "_draws", 0) + 1  # a fresh mask per call, reproducible from torch's seed
        keep = np.random.default_rng((torch.initial_seed(), self._draws)).random(tuple(shape)) >= self.p
        return torch.from_numpy(keep).to(x.device)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_NumpyMask)
