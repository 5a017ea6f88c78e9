"""FeatureAlphaDropout accepts inplace=True and ignores it, as torch.nn.AlphaDropout and
FeatureAlphaDropout do in torch 2.13.0 (docs/findings/torch-alpha-dropout-ignores-inplace.md).
Violates AD-INPLACE-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import FeatureAlphaDropout as _FeatureAlphaDropout

DEFECT = {"clause": "AD-INPLACE-01", "summary": "inplace=True accepted and ignored",
          "source": "docs/findings/torch-alpha-dropout-ignores-inplace.md (torch 2.13.0)"}


class FeatureAlphaDropout(_FeatureAlphaDropout):
    def output(self, x, y):
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
