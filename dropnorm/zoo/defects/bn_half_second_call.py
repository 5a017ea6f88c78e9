"""A layer converted with .half()/.bfloat16() upcasts its running statistics to float32 after the first training
call ("keep the moving averages in fp32", applied lazily), so from the second call on they are float32 beside
half parameters (blind probe round 2, bn1d_half_second_call). Violates BN-DTYPE-02."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-DTYPE-02", "summary": "half running statistics become float32 after the first training call",
          "source": "plausible: apex-style keep_batchnorm_fp32 applied at the first step "
                    "(benchmarks/blind_probes/round2/bn1d_half_second_call.py)"}


class _UpcastsHalfStatistics:
    def forward(self, x):
        y = super().forward(x)
        if self.training and self.running_mean is not None and self.running_mean.dtype in (torch.float16, torch.bfloat16):
            self.running_mean, self.running_var = self.running_mean.float(), self.running_var.float()
        return y


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_UpcastsHalfStatistics)
