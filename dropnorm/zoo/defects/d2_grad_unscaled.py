"""Dropout2d applies its 1/(1-p) scale through .data: the backward is dy * mask
without the scale. Violates D2-GRAD-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects.grad_unscaled import ScaleViaData

DEFECT = {"clause": "D2-GRAD-01", "summary": "the backward misses the 1/(1-p) scale (scaled via .data)",
          "source": "plausible: the legacy .data idiom, in the channel-wise layer"}

Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=ScaleViaData)
