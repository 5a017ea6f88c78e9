"""An early return for empty inputs hands back a flat x.new_empty(0), losing the
input's shape. Violates DO-EMPTY-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-EMPTY-01", "summary": "an empty input returns a flat empty tensor of shape (0,)",
          "source": "plausible: an empty-input guard (cf. https://github.com/pytorch/pytorch/issues/12013)"}


class _FlatEmpty:
    def forward(self, x):
        return x.new_empty(0) if x.numel() == 0 else super().forward(x)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_FlatEmpty)
