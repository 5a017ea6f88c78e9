"""Dropout2d's range check `p < 0 or p > 1` is False for NaN, so p = NaN constructs and fails only
at the first call (what torch.nn.Dropout2d does). Violates D2-API-02 (a recommendation)."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-API-02", "summary": "Dropout2d: p = NaN passes the range check",
          "source": "torch.nn.Dropout2d 2.13 (spec/deviations/torch.toml, D2-API-02/nan)"}


class _ComparisonOnly:
    def check_p(self, p):
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_ComparisonOnly)
