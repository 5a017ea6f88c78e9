"""float16/bfloat16 inputs are normalised in their own precision: the batch mean and
variance are rounded to half before they update the float32 running statistics.
The output stays within the tolerance that the folded form y = x a + c allows
(torch's CPU kernel folds in the input dtype too), but the running mean carries
the half rounding. Violates BN-TRAIN-02."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-02", "summary": "statistics of half inputs are rounded to half before the running update",
          "source": "plausible: no upcast for the statistics (cf. tenstorrent/tt-metal#45968, bf16 statistics)"}


class _NoUpcast:
    @staticmethod
    def work_dtype(x):
        return x.dtype


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoUpcast)
