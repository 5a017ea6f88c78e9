"""Dropped units are multiplied by 0 instead of selected to 0, so a dropped inf or
NaN becomes NaN (what torch.nn.Dropout itself does; recorded as its deviation in
spec/deviations/torch.toml). Violates DO-NONFINITE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-NONFINITE-01", "summary": "a dropped inf or NaN gives NaN (0 * inf), not 0",
          "source": "torch.nn.Dropout 2.13 (spec/deviations/torch.toml, DO-NONFINITE-01/dropped-is-zero)"}


class _Multiplied:
    def apply(self, x, keep, scale):
        return x * (keep.to(x.dtype) * scale)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_Multiplied)
