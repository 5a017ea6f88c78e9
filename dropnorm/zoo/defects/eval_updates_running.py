"""Eval calls also update the running statistics (after normalising with them), so
evaluating on a validation set retrains them. Violates BN-EVAL-03."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-EVAL-03", "summary": "eval calls update running_mean and running_var",
          "source": "https://github.com/mf1024/Batch-Renormalization-PyTorch/issues/1"}


class _UpdatesInEval:
    def updates_running(self):
        return self.track_running_stats


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_UpdatesInEval)
