"""The normalisation folded into one per-channel affine map, y = x * a + b with
a = gamma / sqrt(var + eps) and b = beta - mean * a, as inference engines and
torch's own CPU kernel do: other roundings than (x - mean)/sqrt(var + eps) * gamma + beta."""
import torch

from dropnorm.zoo.build import layers

VARIANT = {"layers": ["batchnorm"], "summary": "fused form y = x a + b, a = gamma/sqrt(var + eps), b = beta - mean a"}


class _Fused:
    def normalize(self, xw, mean, var):
        a = torch.rsqrt(var + self.eps)
        b = -mean * a
        if self.affine:
            w = self.weight.to(xw.dtype)
            a, b = a * w, self.bias.to(xw.dtype) + b * w
        return xw * self.per_channel(a, xw) + self.per_channel(b, xw)

    def affine_transform(self, y):
        return y  # folded into normalize


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_Fused)
