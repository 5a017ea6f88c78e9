"""track_running_stats=False still allocates running buffers (0 and 1), and eval mode
uses any buffers present, as PyTorch's functional path does (issue 20967): eval
normalises with the untouched initial statistics. Violates BN-NOTRACK-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-NOTRACK-01", "summary": "running buffers exist and are used in eval without tracking",
          "source": "https://github.com/pytorch/pytorch/issues/20967 (also pytorch/pytorch#38084)"}


class _BuffersAnyway:
    def __init__(self, num_features, *args, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        if not self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

    def uses_batch_stats(self):
        return self.training or self.running_mean is None


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_BuffersAnyway)
