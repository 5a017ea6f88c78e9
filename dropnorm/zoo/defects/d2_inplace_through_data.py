"""Channel dropout's inplace=True writes the output through x.data, which autograd does not see: on a leaf that
requires grad no error is raised, and after tanh(x) or 2 x the backward silently differentiates through the
overwritten values or without the mask. Violates D2-INPLACE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "D2-INPLACE-01", "summary": "inplace=True writes through .data: silently wrong gradients",
          "source": "plausible: `x.data.copy_(y); return x` (issue 24; as do_inplace_through_data for Dropout)"}


class _InplaceThroughData:
    def output(self, x, y):
        if self.inplace:
            x.data.copy_(y.detach())
            return x
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout2d=_InplaceThroughData)
