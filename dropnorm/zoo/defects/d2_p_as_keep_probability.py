"""Dropout2d keeps each channel with probability p instead of 1-p (the drop/keep
confusion, in the channel mask). Violates D2-TRAIN-03."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects.p_as_keep_probability import KeepWithProbabilityP

DEFECT = {"clause": "D2-TRAIN-03", "summary": "channels are kept with probability p instead of 1-p",
          "source": "https://github.com/v-iashin/CS231n/pull/8, in the channel-wise layer"}

Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=KeepWithProbabilityP)
