"""The normalisation folded into y = x a + b with a = 1/sqrt(var + eps) and b = -mu a rounded
to the working dtype, x a + b evaluated with one rounding (a fused multiply-add, as torch's
vectorised CPU kernel does). x a is of size |mu|/sqrt(var + eps), so its rounding error does
not cancel against b: a constant float32 channel at 1e7 with eps 1e-5 gives |xhat| about 100
instead of 0 (pytorch/pytorch#5410 inputs). Violates BN-NUM-01/constant-channel (and bounded)."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-NUM-01",
          "summary": "normalisation folded into fma(x, a, -mu a): constant channels at large offsets are not beta",
          "source": "probe: issue 14 (torch 2.13 CPU: BatchNorm2d(2) on x of shape (8, 2, 4, 4), all 1e7, "
                    "gives |y| = 105); https://github.com/pytorch/pytorch/issues/5410"}


class _Folded:
    def normalize(self, xw, mean, var):
        a = 1.0 / torch.sqrt(self.per_channel(var, xw) + self.eps)
        b = -self.per_channel(mean, xw) * a
        wide = torch.float64 if xw.dtype != torch.float64 else torch.float64
        if xw.dtype == torch.float64:  # no wider type: emulate the fma's single rounding with the exact product
            return torch.addcmul(b, xw, a)
        return (xw.to(wide) * a.to(wide) + b.to(wide)).to(xw.dtype)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_Folded)
