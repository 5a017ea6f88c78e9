"""reset_running_stats() is guarded by the forward's update condition (`self.training and
self.track_running_stats`), so in eval mode it, and reset_parameters() through it, leave the running
statistics and the counter as they were (blind probe round 2, bn3d_reset_in_eval). Violates BN-RESET-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-RESET-01", "summary": "reset_running_stats() does nothing in eval mode",
          "source": "plausible: the forward's training guard copied into the reset "
                    "(benchmarks/blind_probes/round2/bn3d_reset_in_eval.py)"}


class _ResetOnlyInTraining:
    @torch.no_grad()
    def reset_running_stats(self):
        if self.training and self.track_running_stats:
            self.running_mean.zero_(), self.running_var.fill_(1), self.num_batches_tracked.zero_()

    @torch.no_grad()
    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.fill_(1), self.bias.zero_()


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_ResetOnlyInTraining)
