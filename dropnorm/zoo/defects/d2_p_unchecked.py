"""Dropout2d does not validate p at all (the check lives only in Dropout's code path):
p = -0.1, 1.1, inf and NaN construct. Violates D2-API-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-API-01", "summary": "Dropout2d accepts any p",
          "source": "plausible: validation missing from one of two sibling classes"}


class _Unchecked:
    def check_p(self, p):
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_Unchecked)
