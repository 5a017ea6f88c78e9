"""inplace=True is accepted but ignored: the result is returned as a new tensor and
the input keeps its values. Violates DO-INPLACE-02."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-INPLACE-02", "summary": "inplace=True does not write the result into the input",
          "source": "https://github.com/tenstorrent/tt-metal/issues/30284"}


class _NeverInPlace:
    def output(self, x, y):
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_NeverInPlace)
