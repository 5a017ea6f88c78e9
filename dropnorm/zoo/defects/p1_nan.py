"""The keep mask is divided by (1 - p) and multiplied in, with no special case for
p = 1, where 0/0 makes every output NaN (ATen's dropout guards p = 1 for this reason).
Violates DO-P1-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-P1-01", "summary": "p = 1 gives NaN: the mask is divided by 1 - p = 0",
          "source": "https://github.com/google/flax/pull/2055 (also gorgonia/gorgonia#399)"}


class NoiseDividedByKeep:
    def dropped(self, x):
        noise = self.draw_keep(self.mask_shape(x), x).to(x.dtype)
        return x * noise.div_(1.0 - self.p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=NoiseDividedByKeep)
