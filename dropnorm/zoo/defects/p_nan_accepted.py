"""The range check `p < 0 or p > 1` is False for NaN, so p = NaN constructs (what
torch.nn.Dropout itself does; recorded as its deviation). Violates DO-API-02 (a recommendation since spec 0.2.0)."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-API-02", "summary": "p = NaN passes the range check",
          "source": "torch.nn.Dropout 2.13 (spec/deviations/torch.toml, DO-API-02/nan)"}


class _ComparisonOnly:
    def check_p(self, p):
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        return float(p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_ComparisonOnly)
