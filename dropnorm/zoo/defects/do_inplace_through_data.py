"""inplace=True writes the output through x.data, which autograd does not see: on a leaf that requires grad no
error is raised, and after exp(x) (whose backward needs its output) or 2 x the backward silently runs with the
overwritten values or without the mask, a wrong gradient. Violates DO-INPLACE-03."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-INPLACE-03", "summary": "inplace=True writes through .data: silently wrong gradients",
          "source": "plausible: `x.data.copy_(y); return x`, a common way around 'a leaf Variable that requires grad "
                    "is being used in an in-place operation' (issue 24)"}


class _InplaceThroughData:
    def output(self, x, y):
        if self.inplace:
            x.data.copy_(y.detach())
            return x
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_InplaceThroughData)
