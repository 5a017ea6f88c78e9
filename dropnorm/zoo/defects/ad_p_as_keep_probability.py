"""AlphaDropout keeps each unit with probability p instead of 1-p (p read as the keep probability, as
TensorFlow 1's keep_prob); the constants a, b are those of p. Violates AD-TRAIN-02."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import AlphaDropout as _AlphaDropout

DEFECT = {"clause": "AD-TRAIN-02", "summary": "units kept with probability p, not 1-p",
          "source": "plausible: TensorFlow 1's keep_prob convention, carried to alpha dropout"}


class AlphaDropout(_AlphaDropout):
    def draw_keep(self, shape, x):
        return torch.rand(shape, device=x.device) < self.p


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
