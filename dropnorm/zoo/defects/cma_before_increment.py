"""momentum=None uses 1/t with t read before the increment (1 for the first call):
the cumulative average gives the latest batches too much weight. Violates BN-TRAIN-04."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-04", "summary": "momentum=None uses m = 1/t before the increment",
          "source": "plausible: named in BN-TRAIN-04's rationale"}


class _CountBeforeIncrement:
    def momentum_factor(self):
        if self.momentum is not None:
            return self.momentum
        return 1.0 / max(float(self.num_batches_tracked) - 1.0, 1.0)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CountBeforeIncrement)
