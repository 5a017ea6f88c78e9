"""Dropout2d divides its channel mask by (1 - p) with no p = 1 special case: p = 1
gives NaN instead of zeros. Violates D2-EDGE-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects.p1_nan import NoiseDividedByKeep

DEFECT = {"clause": "D2-EDGE-01", "summary": "p = 1 gives NaN: the channel mask is divided by 1 - p = 0",
          "source": "https://github.com/google/flax/pull/2055, in the channel-wise layer"}

Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=NoiseDividedByKeep)
