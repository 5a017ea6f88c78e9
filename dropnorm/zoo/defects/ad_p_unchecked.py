"""AlphaDropout stores p without checking it: p < 0, p > 1 and inf construct, and a and b come out
complex or NaN at the first call. Violates AD-API-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import AlphaDropout as _AlphaDropout

DEFECT = {"clause": "AD-API-01", "summary": "p is not validated at construction",
          "source": "plausible: a constructor that only stores its arguments"}


class AlphaDropout(_AlphaDropout):
    def check_p(self, p):
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
