"""Inverted dropout in training and, on top of it, the weight-scaling rule of
non-inverted dropout at inference, y = (1-p) x, as source document 004 describes.
Violates DO-EVAL-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-EVAL-01", "summary": "eval mode returns (1-p) x instead of x",
          "source": "ledger L-004-08"}


class _EvalScaled:
    def forward(self, x):
        return super().forward(x) if self.training else x * (1 - self.p)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_EvalScaled)
