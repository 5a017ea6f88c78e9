"""reset_running_stats() zeroes the running mean and sets the running variance to 1 but leaves
num_batches_tracked: after a reset, momentum=None weighs the first batch by 1/(t+1) instead of 1.
Violates BN-RESET-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._family import Resettable

DEFECT = {"clause": "BN-RESET-01", "summary": "reset_running_stats() leaves num_batches_tracked",
          "source": "plausible: a reset of the buffers written before the counter existed (pytorch/pytorch#6445 "
                    "added num_batches_tracked and its reset)"}


class _ResetKeepsCounter(Resettable):
    @torch.no_grad()
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_ResetKeepsCounter)
