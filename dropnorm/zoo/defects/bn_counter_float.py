"""num_batches_tracked is incremented through float32 (t <- int64(float32(t) + 1), as a fused update kernel that
carries its scalars in float32): exact below 2^24, it stalls or rounds above, and momentum=None then weighs by a
wrong 1/t; the buffer stays int64 (blind probe round 2, bn2d_counter_float32). Violates BN-TRAIN-05."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-05", "summary": "num_batches_tracked incremented through float32",
          "source": "plausible: step counters carried as float32 in fused update kernels "
                    "(benchmarks/blind_probes/round2/bn2d_counter_float32.py)"}


class _CounterThroughFloat32:
    def count(self):
        if self.training and self.track_running_stats:
            self.num_batches_tracked.copy_((self.num_batches_tracked.to(torch.float32) + 1).to(torch.long))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CounterThroughFloat32)
