"""FeatureAlphaDropout drops and transforms in eval mode too (the mode flag is never read). Violates
AD-EVAL-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import FeatureAlphaDropout as _FeatureAlphaDropout

DEFECT = {"clause": "AD-EVAL-01", "summary": "active in eval mode",
          "source": "plausible: a functional call with training=True hard-coded"}


class FeatureAlphaDropout(_FeatureAlphaDropout):
    def active(self):
        return self.p > 0.0


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
