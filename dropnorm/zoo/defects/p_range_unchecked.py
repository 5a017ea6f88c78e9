"""Dropout stores p without any check: p = -0.1, 1.1 and inf construct, and the first training call
computes a keep probability outside [0, 1] (a negative scale, or a mask of all zeros). Violates
DO-API-01 (MUST: a p outside [0, 1] has no correct output)."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-API-01", "summary": "Dropout accepts any p",
          "source": "plausible: a constructor that only stores its arguments (as flax, haiku and mxnet do)"}


class _Unchecked:
    def check_p(self, p):
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_Unchecked)
