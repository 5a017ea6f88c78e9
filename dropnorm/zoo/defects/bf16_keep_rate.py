"""The uniform draws are rounded to the input dtype and compared with p in that dtype (a kernel
that keeps everything in the tensor's type). Harmless in float32/float64 and nearly so in
float16, but in bfloat16 (8 significant bits) p = 0.999 rounds to 1.0 and draws near 1 round
up: the keep rate near p = 1 is about 0.002 whatever p is. Violates DO-TRAIN-02."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-02", "summary": "draws compared with p in the input dtype: wrong keep rate in bfloat16",
          "source": "probe: bfloat16-only keep-rate error (issue 14)"}


class _DrawInInputDtype:
    def draw_keep(self, shape, x):
        u = torch.rand(shape, device=x.device).to(x.dtype)
        return u >= torch.tensor(self.p, dtype=x.dtype, device=x.device)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_DrawInInputDtype)
