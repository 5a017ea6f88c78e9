"""The constructor writes `p or 0.5`, so p = 0 (falsy) silently becomes the default
0.5 instead of disabling dropout. Violates DO-P0-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-P0-01", "summary": "p = 0 is replaced by the default 0.5 (`p or 0.5`)",
          "source": "plausible: Python's falsy 0.0 in a default-argument idiom"}


class _FalsyDefault:
    def check_p(self, p):
        return super().check_p(p or 0.5)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_FalsyDefault)
