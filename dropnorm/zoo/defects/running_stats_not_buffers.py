"""running_mean and running_var are plain tensor attributes instead of registered
buffers: they are not in state_dict, so a restored layer evaluates with 0 and 1
(the d2l-zh BatchNorm, torch/nn issue 1165). Violates BN-STATE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-STATE-01", "summary": "running statistics are plain attributes, not saved",
          "source": "https://github.com/d2l-ai/d2l-zh/pull/1265 (also vlomonaco/ar1-pytorch#1, torch/nn#1165)"}


class _PlainAttributes:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.track_running_stats:
            mean, var = self.running_mean, self.running_var
            del self.running_mean, self.running_var
            self.running_mean, self.running_var = mean, var


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_PlainAttributes)
