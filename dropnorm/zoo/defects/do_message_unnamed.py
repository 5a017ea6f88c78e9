"""Dropout rejects a bad p, but its error reads "invalid value: expected a number in the supported range":
it does not say which argument is wrong. Violates DO-API-02 (a recommendation: the error names p). The
message contains the letter p twice ("expected", "supported"), so the check it was written against, the
substring test `"p" in str(e)` that DO-API-02 used before spec 0.2.0 (issue 24), passed it; the check
now asks for p, "probability" or "dropout" (or the convention's own name) as a word."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-API-02", "summary": "Dropout's error does not name p (but contains the letter p)",
          "source": "plausible: a generic validation helper shared by every argument (issue 24: the "
                    "vacuous message check)"}


class _GenericMessage:
    def check_p(self, p):
        if not 0 <= p <= 1:  # NaN fails this comparison too, so NaN is rejected at construction
            raise ValueError("invalid value: expected a number in the supported range")
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_GenericMessage)
