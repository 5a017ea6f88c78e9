"""Dropout2d drops channels in eval mode too, as F.dropout2d(x, p) called with its
default training=True does. Violates D2-EVAL-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-EVAL-01", "summary": "eval mode still drops channels (training flag ignored)",
          "source": "https://github.com/Coderx7/SimpleNet/issues/2"}


class _AlwaysTraining:
    def active(self):
        return self.p > 0.0


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_AlwaysTraining)
