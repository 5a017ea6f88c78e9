"""AlphaDropout keeps a and b as float32 tensors (opmath) of x's rank, so type promotion makes float16 and
bfloat16 inputs come out in float32.
Violates AD-DTYPE-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._dropout_family import ALPHA_PRIME, AlphaDropout as _AlphaDropout, alpha_constants

DEFECT = {"clause": "AD-DTYPE-01", "summary": "half-precision inputs promoted to float32",
          "source": "plausible: constants created as float32 tensors (type promotion)"}


class AlphaDropout(_AlphaDropout):
    def apply(self, x, keep, a):
        _, b = alpha_constants(self.p)
        # constants in at least float32 ("opmath"), as broadcastable tensors, never cast back to x's dtype
        dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        t = lambda v: torch.full((1,) * x.dim(), v, dtype=dtype, device=x.device)  # noqa: E731
        kept = x * t(a) + t(b)
        return torch.where(keep, kept, t(a * ALPHA_PRIME + b).to(kept.dtype))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
