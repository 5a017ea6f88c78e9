"""Channel dropout works on a contiguous copy of its input (x.contiguous(), as kernels written for NCHW do):
a channels_last input comes back contiguous (the values are right). Violates D2-FORMAT-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-FORMAT-01", "summary": "channel dropout returns a contiguous output for a channels_last input",
          "source": "plausible: an NCHW kernel called on input.contiguous() (issue 24)"}


class _ContiguousCopy:
    def dropped(self, x):
        return super().dropped(x.contiguous())


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_ContiguousCopy)
