"""The running-statistics update (counter included) is keyed on track_running_stats
alone, not on the mode: eval calls update running_mean, running_var and
num_batches_tracked after normalising with them, so evaluating on a validation set
retrains them (batches with one value per channel, which training rejects, are
skipped). Violates BN-EVAL-03."""
import math

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-EVAL-03", "summary": "eval calls update the running statistics",
          "source": "https://github.com/mf1024/Batch-Renormalization-PyTorch/issues/1"}


class _UpdatesInEval:
    def updates_running(self):
        return self.track_running_stats

    def count(self):
        if self.track_running_stats:
            self.num_batches_tracked += 1

    @staticmethod
    def carries_statistics(shape):
        return math.prod(shape) > shape[1]


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_UpdatesInEval)
