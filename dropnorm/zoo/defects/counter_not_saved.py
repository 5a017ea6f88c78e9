"""num_batches_tracked is a non-persistent buffer, left out of state_dict, so a
restored layer starts counting from 0 (cf. PyTorch PR 110850, OneFlow issue 7440).
Violates BN-STATE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-STATE-01", "summary": "num_batches_tracked is not saved in state_dict",
          "source": "https://github.com/pytorch/pytorch/pull/110850 (also Oneflow-Inc/oneflow#7440)"}


class _CounterNotPersistent:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.track_running_stats:
            self.register_buffer("num_batches_tracked", self.num_batches_tracked, persistent=False)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CounterNotPersistent)
