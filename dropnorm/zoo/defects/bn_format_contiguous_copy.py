"""BatchNorm normalises a contiguous copy of its input (x.contiguous(), as kernels written for NCHW do): a
channels_last input comes back contiguous, so a channels_last network pays two layout conversions per block
(the values are right). Violates BN-FORMAT-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-FORMAT-01", "summary": "a channels_last input gives a contiguous output",
          "source": "plausible: an NCHW kernel called on input.contiguous() (issue 24; torch documents channels_last "
                    "propagation through BatchNorm)"}


class _ContiguousCopy:
    def working_copy(self, x):
        return super().working_copy(x).contiguous()


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_ContiguousCopy)
