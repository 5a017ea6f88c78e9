"""AlphaDropout rejects a bad p, but its error says only "invalid value": the user is not told which
argument is wrong. Violates AD-API-02 (a recommendation: errors name the argument). The check is not
vacuous: the message contains no "p" at all."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import AlphaDropout as _AlphaDropout

DEFECT = {"clause": "AD-API-02", "summary": "AlphaDropout's error does not name p",
          "source": "plausible: a generic validation helper shared by every argument"}


class AlphaDropout(_AlphaDropout):
    def check_p(self, p):
        if not 0 <= p <= 1:  # NaN fails this comparison too, so NaN is rejected
            raise ValueError("invalid value")
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
