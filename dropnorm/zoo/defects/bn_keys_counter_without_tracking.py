"""With track_running_stats=False the layer still registers num_batches_tracked (a counter kept for a uniform
update kernel, never incremented): its saved state has a key torch's layer of the same configuration does not
have, so strict loading of its checkpoints into torch.nn fails ("Unexpected key(s) in state_dict:
num_batches_tracked"). Violates BN-KEYS-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-KEYS-01", "summary": "track_running_stats=False still saves a num_batches_tracked buffer",
          "source": "plausible: a counter registered unconditionally in __init__ (issue 24: torch keeps only weight "
                    "and bias without tracking)"}


class _CounterWithoutTracking:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.track_running_stats:
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CounterWithoutTracking)
