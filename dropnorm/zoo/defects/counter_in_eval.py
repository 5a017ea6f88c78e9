"""num_batches_tracked is incremented by every forward call with tracking on, eval
calls included. Violates BN-TRAIN-05."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-05", "summary": "eval calls increment num_batches_tracked",
          "source": "plausible: the counter bumped before the mode check"}


class _CountsEveryCall:
    def forward(self, x):
        if not self.training and self.track_running_stats:
            self.num_batches_tracked += 1
        return super().forward(x)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CountsEveryCall)
