"""float16/bfloat16 inputs are multiplied in float32 (opmath) and the result is never
cast back, so the output dtype changes (MLX's Dropout returned float32 for bfloat16).
Violates DO-DTYPE-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-DTYPE-01", "summary": "half-precision inputs come back as float32",
          "source": "https://github.com/ml-explore/mlx/issues/1321"}


class _Float32Opmath:
    def apply(self, x, keep, scale):
        if x.dtype in (torch.float16, torch.bfloat16):
            x, scale = x.float(), scale.float()
        return super().apply(x, keep, scale)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_Float32Opmath)
