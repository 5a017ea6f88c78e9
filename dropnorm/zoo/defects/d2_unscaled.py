"""Dropout2d zeroes whole channels but does not rescale the kept ones by 1/(1-p).
Violates D2-TRAIN-02."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects.no_inverted_scaling import _Unscaled

DEFECT = {"clause": "D2-TRAIN-02", "summary": "kept channels are not rescaled by 1/(1-p)",
          "source": "ledger L-002-14, in the channel-wise layer"}

Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_Unscaled)
