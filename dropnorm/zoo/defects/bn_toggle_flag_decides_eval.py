"""Eval reads the track_running_stats flag instead of the buffers: a layer whose tracking is switched off after
training (to freeze its statistics for fine-tuning) then normalises eval batches with batch statistics,
ignoring the running statistics it holds. Violates BN-TOGGLE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TOGGLE-01", "summary": "track_running_stats switched off after construction makes eval use "
                                               "batch statistics",
          "source": "plausible: `use_batch_stats = self.training or not self.track_running_stats` (the suite's own "
                    "from-scratch BatchNorm did this before issue 24; torch decides by the buffers)"}


class _FlagDecidesEval:
    def uses_batch_stats(self):
        return self.training or not self.track_running_stats


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_FlagDecidesEval)
