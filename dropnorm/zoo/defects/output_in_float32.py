"""The output is left in the float32 working precision: half inputs come back as
float32. Violates BN-DTYPE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-DTYPE-01", "summary": "half-precision inputs give float32 outputs",
          "source": "plausible: the cast back from the accumulation dtype forgotten (cf. ml-explore/mlx#1321)"}


class _NoCastBack:
    @staticmethod
    def output(y, x):
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoCastBack)
