"""float16/bfloat16 inputs are normalised in their own precision: mean, variance and
output are accumulated in half instead of at least float32. Violates BN-DTYPE-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-DTYPE-01", "summary": "statistics of half inputs accumulated in half precision",
          "source": "plausible: no upcast for reductions (cf. tenstorrent/tt-metal#45968, bf16 statistics)"}


class _NoUpcast:
    @staticmethod
    def work_dtype(x):
        return x.dtype


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoUpcast)
